"""A forced build with two codebases (util.CodebaseParameter): a real master and our slave on
loopback, two real git repositories; each Git step checks out the revision forced for its
codebase, and the build's ``sourcestamps`` and ``got_revision`` say so."""

from fixtures.sourcesteps import GitRepo

MASTER_CFG = """\
from buildfarm.master.plugins import schedulers, steps, util, worker

c = BuildmasterConfig = {{}}
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['workers'] = [worker.Worker('bs1', 'pass')]
c['builders'] = [util.BuilderConfig(name='two', workernames=['bs1'], factory=util.BuildFactory([
    steps.Git(repourl={app_url!r}, codebase='app', workdir='build/app', mode='full', method='fresh'),
    steps.Git(repourl={lib_url!r}, codebase='lib', workdir='build/lib', mode='full', method='fresh'),
    steps.ShellCommand(command='cat app/a.txt lib/b.txt', name='show'),
]))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['two'], codebases=[
    util.CodebaseParameter('app', project=None),
    util.CodebaseParameter('lib', branch=util.ChoiceStringParameter(name='branch', choices=['main', 'dev'])),
])]
"""


def test_forced_build_checks_out_the_forced_revision_of_each_codebase(fleet, tmp_path):
    app, lib = GitRepo(tmp_path / "app"), GitRepo(tmp_path / "lib")
    app_old = app.commit({"a.txt": "app old\n"})
    app.commit({"a.txt": "app new\n"})
    lib.commit({"b.txt": "lib main\n"})
    lib.git("checkout", "-q", "-b", "dev")
    lib_dev_old = lib.commit({"b.txt": "lib dev old\n"})
    lib.commit({"b.txt": "lib dev new\n"})
    lib.git("checkout", "-q", "main")
    master = fleet.master(config=lambda pb_port, www_port: MASTER_CFG.format(
        pb_port=pb_port, www_port=www_port, app_url=app.url, lib_url=lib.url))
    fleet.slave(master)
    master.wait_attached("bs1")

    brid = master.force("two", reason="two codebases", properties={
        "app_revision": app_old, "lib_branch": "dev", "lib_revision": lib_dev_old})
    request = master.wait_request_complete(brid)
    build = master.get(f"/api/v1/builds/{request['buildids'][0]}")

    assert build["result"] == "success", build
    assert build["properties"]["got_revision"] == {"app": app_old, "lib": lib_dev_old}
    assert build["properties"]["sourcestamps"] == [
        {"codebase": "app", "branch": "", "repository": "", "revision": app_old},
        {"codebase": "lib", "branch": "dev", "project": "", "repository": "", "revision": lib_dev_old},
    ]
    _, shown = master.request("GET", f"/api/v1/builds/{build['buildid']}/steps/2/logs/stdio")
    assert "app old\nlib dev old\n" in shown.decode(errors="replace")


def test_forcing_a_codebase_field_the_scheduler_refuses_answers_400(fleet, tmp_path):
    app, lib = GitRepo(tmp_path / "app"), GitRepo(tmp_path / "lib")
    master = fleet.master(config=lambda pb_port, www_port: MASTER_CFG.format(
        pb_port=pb_port, www_port=www_port, app_url=app.url, lib_url=lib.url))
    status, body = master.request("POST", "/api/v1/builders/two/force",
                                  {"properties": {"lib_branch": "feature"}})
    assert status == 400 and b"lib_branch" in body and b"not one of" in body
