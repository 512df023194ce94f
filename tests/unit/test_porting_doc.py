"""docs/porting.md cannot drift from the code: its tables are what contrib/porting_table.py
makes from the plugins namespaces, Buildbot's names table and the config's keys."""

import importlib.util
import os

from buildfarm.master import plugins
from buildfarm.master.buildbotnames import BUILDBOT_PLUGINS
from fixtures.buildbotpackage import REPO_ROOT


def porting_table():
    spec = importlib.util.spec_from_file_location(
        "porting_table", os.path.join(REPO_ROOT, "contrib", "porting_table.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_porting_md_holds_the_generated_tables():
    table = porting_table()
    with open(table.DOC, encoding="utf-8") as f:
        text = f.read()
    assert table.rewrite(text) == text, "run `python contrib/porting_table.py` to update docs/porting.md"


def test_every_buildbot_name_has_a_row_that_says_whether_it_is_supported():
    table = porting_table()
    for namespace in table.NAMESPACES:
        rows = {name: support for name, support, _ in table.support_rows(namespace)}
        for name in BUILDBOT_PLUGINS[namespace]:
            head, _, leaf = name.rpartition(".")
            space = getattr(getattr(plugins, namespace), head) if head else getattr(plugins, namespace)
            assert (rows[name] == "not supported") == (not space.supports(leaf)), (namespace, name)


def test_a_not_supported_row_says_what_to_use_instead():
    table = porting_table()
    for namespace in table.NAMESPACES:
        for name, support, note in table.support_rows(namespace):
            if support == "not supported":
                assert note, (namespace, name)


def test_the_readme_links_the_porting_page():
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as f:
        assert "(docs/porting.md)" in f.read()
