"""A configuration in the style of the real, public Buildbot 4 configs tried in docs/porting.md
("Real configurations tried"), written here in our own words, RUNS on buildfarm with only its
import lines in buildfarm's spelling.  It uses what those configs share:

- Buildbot's module paths beside ``buildbot.plugins`` (``locks``, ``steps.source.git``,
  ``schedulers.forcesched``, ``worker``, ``process.results``, ``process.properties``);
- a helper package beside master.cfg without ``__init__.py``, an ini file read with
  configparser, worker passwords in a JSON file, ``w.workername``;
- a BuildFactory subclass adding Git (full/clobber), Configure, Compile, Test, ShellSequence
  and SetPropertyFromCommand steps, a WorkerLock;
- a force parameter written against Buildbot's API (``parse_from_arg``, ``updateFromKwargs``,
  ``ValidationError``) that turns a release tag into a branch and a revision, and a Trigger
  whose ``sourceStamps`` hand them to a Triggerable builder (the pattern of OpenWrt's phase1).

Forcing a tag builds exactly the tagged commit, on our slave and on a stock buildbot-worker 4.3;
a bad tag is refused with a 400.
"""

import json
import os
import subprocess

import pytest

from fixtures.daemons import TEST_USER_CFG, Master, free_port, run_cli, wait_for
from fixtures.repos import GitRepo

BUILD_DEADLINE_S = 120.0
WORKER, PASSWORD = "linux-1", "s3cret"

MASTER_CFG = """\
import configparser
import json
import os

from buildfarm.master.plugins import schedulers, steps, util
from buildfarm.master import locks
from buildfarm.master.process.properties import Property
from buildfarm.master.worker import Worker

from ci.factories import ProductFactory
from ci.params import ReleaseTagParameter

ini = configparser.ConfigParser()
ini.read(os.path.join(os.path.dirname(__file__), 'config.ini'))
repo_url = ini['repo']['url']

with open(os.path.join(os.path.dirname(__file__), 'workers.json')) as f:
    passwords = json.load(f)

c = BuildmasterConfig = {{}}
c['title'] = ini['general']['title']
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['buildbotNetUsageData'] = None

c['workers'] = [Worker(name, password, max_builds=2) for name, password in sorted(passwords.items())]
worker_names = [w.workername for w in c['workers']]
compile_lock = locks.WorkerLock('compile', maxCount=1)

force_factory = util.BuildFactory()
force_factory.addStep(steps.Trigger(
    name='trigger_release',
    schedulerNames=['release'],
    waitForFinish=True,
    sourceStamps=[{{'codebase': '', 'branch': Property('force_branch'),
                    'revision': Property('force_revision'), 'repository': repo_url, 'project': ''}}],
    set_properties={{'tag': Property('tag')}}))

c['builders'] = [
    util.BuilderConfig(name='release-build', workernames=worker_names,
                       factory=ProductFactory(repo_url, compile_lock)),
    util.BuilderConfig(name='force-release', workernames=worker_names, factory=force_factory),
]
c['schedulers'] = [
    schedulers.Triggerable(name='release', builderNames=['release-build']),
    schedulers.ForceScheduler(name='force', builderNames=['force-release'],
                              reason=util.StringParameter(name='reason', default='release'),
                              properties=[ReleaseTagParameter(name='tag', label='Release tag',
                                                              repourl=repo_url)]),
]
"""

FACTORIES_PY = """\
from buildfarm.master.plugins import steps, util
from buildfarm.master.process.factory import BuildFactory
from buildfarm.master.steps.source.git import Git


class ProductFactory(BuildFactory):
    \"\"\"Check the product out, configure, build and test it.\"\"\"

    def __init__(self, repourl, compile_lock):
        super().__init__()
        self.addStep(Git(repourl=repourl, mode='full', method='clobber', haltOnFailure=True))
        self.addStep(steps.Configure(command=['sh', 'configure']))
        self.addStep(steps.Compile(command=['make'], locks=[compile_lock.access('exclusive')]))
        self.addStep(steps.Test(command=['make', 'check']))
        self.addStep(steps.SetPropertyFromCommand(command=['cat', 'VERSION'], property='version'))
        self.addStep(steps.ShellSequence(name='package', commands=[
            util.ShellArg(command=['mkdir', '-p', 'dist'], logname='mkdir'),
            util.ShellArg(command=util.Interpolate('tar cf dist/product-%(prop:version)s.tar out'),
                          logname='tar', haltOnFailure=True),
        ]))
"""

PARAMS_PY = """\
import re
import subprocess

from buildfarm.master.schedulers.forcesched import BaseParameter, ValidationError

TAG = re.compile(r'^v([0-9]+)\\.[0-9]+\\.[0-9]+$')


class ReleaseTagParameter(BaseParameter):
    \"\"\"A release tag: the build gets the tagged revision and its release branch.\"\"\"

    def __init__(self, name, repourl, label=None, **kw):
        super().__init__(name, label, **kw)
        self.repourl = repourl

    def parse_from_arg(self, s):
        if not TAG.match(s or ''):
            raise ValidationError(f"{{s!r}} is not a release tag (vX.Y.Z)")
        return s

    def updateFromKwargs(self, properties, kwargs, **unused):
        tag = self.getFromKwargs(kwargs)
        listing = subprocess.run(['git', 'ls-remote', '--tags', self.repourl, tag],
                                 capture_output=True, text=True, check=True).stdout.split()
        if not listing:
            raise ValidationError(f"no tag {{tag!r}} in {{self.repourl}}")
        properties[self.name] = tag
        properties['force_revision'] = listing[0]
        properties['force_branch'] = 'release-' + TAG.match(tag).group(1)
"""

CONFIGURE = "echo 'PREFIX=out' > config.mk\n"
MAKEFILE = (
    "include config.mk\n"
    "all:\n\tmkdir -p $(PREFIX) && cp VERSION $(PREFIX)/version.txt\n"
    "check:\n\tgrep -q '^1\\.' $(PREFIX)/version.txt\n"
)


def product_repo(path: str) -> tuple[GitRepo, str]:
    """A product with a release branch ``release-1`` tagged ``v1.0.0``, and a newer ``main``;
    the tagged commit's sha."""
    repo = GitRepo(path, branch="main")
    repo.commit("configure", CONFIGURE, "configure")
    repo.commit("Makefile", MAKEFILE, "build and check")
    repo.commit("VERSION", "1.0.0\n", "version 1.0.0")
    repo.checkout("release-1", new=True)
    tagged = repo.head()
    subprocess.run(["git", "tag", "v1.0.0"], cwd=path, check=True)
    repo.checkout("main")
    repo.commit("VERSION", "2.0.0-dev\n", "start 2.0")
    return repo, tagged


def write_beside(basedir: str, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = os.path.join(basedir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


@pytest.mark.parametrize("worker_kind", ["buildfarm buildslave", "stock buildbot-worker 4.3"])
def test_a_real_style_config_forces_a_release_tag_through_a_trigger_with_source_stamps(fleet, tmp_path,
                                                                                      worker_kind):
    repo, tagged = product_repo(str(tmp_path / "product"))
    # The files master.cfg reads lie beside it before create-master checks it.
    master = Master(str(tmp_path / "master"), free_port(), free_port())
    write_beside(master.basedir, {
        "ci/factories.py": FACTORIES_PY,  # a package without __init__.py
        "ci/params.py": PARAMS_PY,
        "config.ini": f"[general]\ntitle = Product CI\n[repo]\nurl = {repo.url}\n",
        "workers.json": json.dumps({WORKER: PASSWORD}),
    })
    config = tmp_path / "master.cfg"
    config.write_text(MASTER_CFG.format(pb_port=master.pb_port, www_port=master.www_port) + TEST_USER_CFG)
    run_cli("buildmaster", "create-master", "--config", str(config), master.basedir, check=True)
    fleet.masters.append(master)
    checked = run_cli("buildmaster", "checkconfig", master.basedir)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    run_cli("buildmaster", "start", master.basedir, check=True)
    if worker_kind == "buildfarm buildslave":
        fleet.slave(master, WORKER, PASSWORD)
    else:
        fleet.stock_worker(master, WORKER, PASSWORD)
    master.wait_attached(WORKER)

    form = master.get("/api/v1/builders/force-release")["force"]
    assert [(p["name"], p["label"]) for p in form["parameters"]] == [("tag", "Release tag")], form
    status, page = master.request("GET", "/builders/force-release")
    assert status == 200 and b"Release tag" in page

    status, body = master.request("POST", "/api/v1/builders/force-release/force",
                                  {"properties": {"tag": "1.0"}})
    assert status == 400 and b"is not a release tag" in body, body

    brid = master.force("force-release", properties={"tag": "v1.0.0"})
    forced = master.wait_request_complete(brid, BUILD_DEADLINE_S)
    [release] = wait_for(lambda: master.get("/api/v1/builds?builder=release-build&complete=true")["builds"],
                         "the triggered release build", BUILD_DEADLINE_S)
    detail = master.get(f"/api/v1/builds/{release['buildid']}")
    assert release["result"] == "success", (detail, master.log_text()[-3000:])
    assert forced["result"] == "success"  # the Trigger waited for the release build
    assert [s["name"] for s in detail["steps"]] == ["git", "configure", "compile", "test", "setproperty",
                                                    "package"]
    properties = release["properties"]
    assert properties["got_revision"] == tagged  # the tag's commit, not main's newer one
    assert (properties["branch"], properties["revision"]) == ("release-1", tagged)
    assert (properties["version"], properties["tag"]) == ("1.0.0", "v1.0.0")
    assert properties["sourcestamps"][0]["repository"] == repo.url
    assert master.get("/api/v1/")["title"] == "Product CI"
    assert "Traceback" not in master.log_text()
