"""``reporters.HttpStatusPush`` end to end: a real master and slave, and a recording HTTP
server on loopback that checks each request (method, path, Content-Type, auth and headers
from secrets, the JSON body's Buildbot keys) and records it.  Builds that succeed, fail and
are retried (the slave stopped mid-build) are pushed; a dead endpoint (refusing, then
answering 500) is retried with backoff, logged, while builds go on; a master restarted with a
report pending delivers it once."""

import base64
import os

import pytest

from fixtures.daemons import Master, free_port, run_cli, wait_for
from fixtures.recordinghttp import RecordingHTTPServer

TOKEN = "s3cret-push-t0ken"
PATH = "/hooks/buildfarm"
BUILD_KEYS = {"buildid", "number", "builderid", "buildrequestid", "workerid", "masterid", "started_at",
              "complete_at", "complete", "state_string", "results", "properties", "builder",
              "buildrequest", "buildset", "url", "parentbuild", "parentbuilder", "locks_duration_s"}

MASTER_CFG = """\
from buildfarm.master.plugins import reporters, schedulers, secrets, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}, 'ping_interval': 5, 'ping_timeout': 5}}}}
c['secretsProviders'] = [secrets.SecretInAFile(dirname={secrets_dir!r})]
c['builders'] = [
    util.BuilderConfig(name='passes', slavenames=['bs1'], tags=['fast'],
                       factory=util.BuildFactory([steps.ShellCommand(command=['echo', 'ok'])])),
    util.BuilderConfig(name='fails', slavenames=['bs1'],
                       factory=util.BuildFactory([steps.ShellCommand(command=['false'])])),
    util.BuilderConfig(name='lost', slavenames=['bs1'], factory=util.BuildFactory([
        steps.ShellCommand(command=['sh', '-c', 'if [ -e {marker} ]; then echo again; '
                                    'else touch {marker}; sleep 120; fi'])])),
]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['passes', 'fails', 'lost'])]
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['services'] = [reporters.HttpStatusPush(
    {server_url!r}, auth=('buildfarm', util.Secret('push_token')),
    headers={{'X-Token': util.Interpolate('%(secret:push_token)s'), 'X-Farm': 'e2e'}},
    backoff_base_s=0.5, backoff_max_s=2.0)]
"""


def check_request(path: str, headers: dict, build) -> list[str]:
    """What an endpoint of ours would refuse in a request (400): its path, Content-Type,
    Authorization and headers from the secrets, the body's Buildbot keys."""
    expected_auth = "Basic " + base64.b64encode(f"buildfarm:{TOKEN}".encode()).decode()
    problems = []
    if path != PATH:
        problems.append(f"path {path}")
    if headers.get("Content-Type") != "application/json":
        problems.append(f"Content-Type {headers.get('Content-Type')}")
    if headers.get("Authorization") != expected_auth:
        problems.append(f"Authorization {headers.get('Authorization')}")
    if (headers.get("X-Token"), headers.get("X-Farm")) != (TOKEN, "e2e"):
        problems.append(f"headers {headers}")
    if not isinstance(build, dict) or not BUILD_KEYS <= set(build):
        problems.append(f"body {build!r}")
    return problems


@pytest.fixture
def recorder():
    server = RecordingHTTPServer(free_port(), PATH, check_request)
    yield server
    server.stop()


def start_master(fleet, recorder: RecordingHTTPServer) -> Master:
    secrets_dir = os.path.join(fleet.root, "secrets")
    os.makedirs(secrets_dir, exist_ok=True)
    with open(os.path.join(secrets_dir, "push_token"), "w") as f:
        f.write(TOKEN)
    os.chmod(secrets_dir, 0o700)
    os.chmod(os.path.join(secrets_dir, "push_token"), 0o600)
    marker = os.path.join(fleet.root, "lost-once")
    return fleet.master(config=lambda pb_port, www_port: MASTER_CFG.format(
        pb_port=pb_port, www_port=www_port, secrets_dir=secrets_dir, server_url=recorder.url,
        marker=marker))


def build(master: Master, builder: str) -> dict:
    return master.wait_request_complete(master.force(builder))


def test_builds_that_succeed_fail_and_are_retried_are_pushed(fleet, recorder):
    recorder.start()
    master = start_master(fleet, recorder)
    slave = fleet.slave(master)
    master.wait_attached("bs1")

    assert build(master, "passes")["result"] == "success"
    assert build(master, "fails")["result"] == "failure"
    brid = master.force("lost")
    wait_for(lambda: ("lost", 1, False, None) in recorder.seen(), "the start of lost#1 pushed")
    run_cli("buildslave", "stop", slave.basedir, check=True)  # lost#1 ends RETRY
    run_cli("buildslave", "start", slave.basedir, check=True)  # the request runs again: lost#2
    assert master.wait_request_complete(brid, deadline_s=60)["result"] == "success"
    wait_for(lambda: len(recorder.seen()) == 7, "seven reports")

    assert recorder.problems == []
    # Buildbot's default generator: every start; the ends that passed, failed or warned (not RETRY).
    assert recorder.seen() == [("passes", 1, False, None), ("passes", 1, True, 0),
                               ("fails", 1, False, None), ("fails", 1, True, 2),
                               ("lost", 1, False, None),
                               ("lost", 2, False, None), ("lost", 2, True, 0)]
    end = recorder.calls[1]
    assert end["builder"]["name"] == "passes" and end["builder"]["tags"] == ["fast"]
    assert end["state_string"] == "build success"
    assert end["properties"]["buildername"] == ["passes", "Build"]
    assert end["properties"]["workername"] == ["bs1", "Build"]
    assert end["url"].endswith(f"/builds/{end['buildid']}")
    assert end["started_at"] <= end["complete_at"]
    assert end["buildrequest"]["buildrequestid"] == end["buildrequestid"]
    assert "sourcestamps" in end["buildset"]


def test_a_dead_endpoint_is_retried_with_backoff_and_logged_while_builds_go_on(fleet, recorder):
    master = start_master(fleet, recorder)  # nothing listens on the recorder's port yet
    fleet.slave(master)
    master.wait_attached("bs1")
    assert build(master, "passes")["result"] == "success"
    assert build(master, "fails")["result"] == "failure"  # builds go on while pushes fail
    wait_for(lambda: master.log_text().count("failed (attempt") >= 2, "two failed attempts logged")
    assert "Connection was refused" in master.log_text()

    recorder.status = 500
    recorder.start()
    wait_for(lambda: len(recorder.refused) >= 2, "two attempts answered 500")
    assert "answered 500" in master.log_text()
    recorder.status = 200
    wait_for(lambda: len(recorder.seen()) == 4, "the four reports, once the endpoint is back")
    assert recorder.seen() == [("passes", 1, False, None), ("passes", 1, True, 0),
                               ("fails", 1, False, None), ("fails", 1, True, 2)]
    assert recorder.problems == []


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_a_master_restarted_with_a_report_pending_delivers_it_once(fleet, recorder, how):
    master = start_master(fleet, recorder)  # the endpoint is down
    fleet.slave(master)
    master.wait_attached("bs1")
    assert build(master, "fails")["result"] == "failure"
    wait_for(lambda: "failed (attempt" in master.log_text(), "a failed attempt logged")
    master.halt(how)

    recorder.start()
    run_cli("buildmaster", "start", master.basedir, check=True)
    wait_for(lambda: len(recorder.seen()) == 2, "the pending reports delivered after the restart")
    master.wait_attached("bs1")
    assert build(master, "passes")["result"] == "success"
    wait_for(lambda: len(recorder.seen()) == 4, "the next build's reports")
    assert recorder.seen() == [("fails", 1, False, None), ("fails", 1, True, 2),
                               ("passes", 1, False, None), ("passes", 1, True, 0)]
    assert recorder.problems == []
