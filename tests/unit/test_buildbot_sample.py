"""Buildbot 4.3's own sample.cfg, with its import line changed and nothing else, loads (two
warnings: keys without effect), and the names table is Buildbot's own."""

import importlib.util
import os

import pytest

from buildfarm.master import buildbotnames, plugins
from buildfarm.master.config import load_config
from fixtures.buildbotpackage import (
    REPO_ROOT,
    buildbot_package_file,
    expected_sample_problems,
    ported_sample_cfg,
)

SAMPLE_WARNINGS = [
    "master.cfg:96: c['www']['plugins'] has no effect: buildfarm's web pages are built in; "
    "there are no www plugins",
]


def test_buildbot_sample_cfg_loads_with_its_import_line_changed(tmp_path):
    path = tmp_path / "master.cfg"
    path.write_text(ported_sample_cfg())
    assert expected_sample_problems() == []  # GitPoller and steps.Git exist
    config = load_config(str(path))
    assert [b.name for b in config.builders] == ["runtests"]
    assert [type(s).__name__ for s in config.change_sources] == ["GitPoller"]
    assert config.warnings == SAMPLE_WARNINGS


def test_the_names_table_is_what_the_generator_makes_from_buildbot_4_3():
    spec = importlib.util.spec_from_file_location("buildbot_names", os.path.join(REPO_ROOT, "contrib",
                                                                                 "buildbot_names.py"))
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    dist_info = os.path.dirname(buildbot_package_file("buildbot-4.3.*.dist-info", "entry_points.txt"))
    with open(buildbotnames.__file__, encoding="utf-8") as f:
        assert f.read() == generator.render(dist_info)


def test_every_buildbot_namespace_knows_every_name_buildbot_offers():
    for namespace, names in buildbotnames.BUILDBOT_PLUGINS.items():
        if namespace == "machine":
            continue  # not a namespace of buildbot.plugins
        space = getattr(plugins, namespace)
        for name in names:
            head, _, rest = name.partition(".")
            target = getattr(space, head) if rest else space
            leaf = rest or name
            if not target.supports(leaf):
                with pytest.raises(AttributeError, match=f"^not supported by buildfarm: {leaf} "):
                    getattr(target, leaf)


def test_the_sample_git_poller_is_supported():
    assert plugins.changes.supports("GitPoller")
    assert not [p for p in expected_sample_problems() if "GitPoller" in p]
