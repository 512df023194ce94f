"""Buildbot 4's ``c['www']['auth']`` and ``c['www']['authz']`` end to end, against a real
master process and slave: a force by a user without the role is a 403 JSON naming the scope,
by a user with it a build that runs; whoami says where each scope came from; the master's
checkconfig explains who holds what; RemoteUserAuth through a header set by a trusted proxy
(the test, on 127.0.0.1)."""

import base64
import json
import os

from fixtures.daemons import run_cli

CONFIG = """\
from buildfarm.master.plugins import *

c = BuildmasterConfig = {{}}
c['workers'] = [worker.Worker('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['builders'] = [util.BuilderConfig(name=name, workernames=['bs1'],
                 factory=util.BuildFactory([steps.ShellCommand(command=['echo', 'hello'])]))
                 for name in ('b1', 'b2')]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['b1', 'b2'])]
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['www'] = dict(port={www_port},
                auth={auth},
                authz=util.Authz(
                    allowRules=[
                        util.ForceBuildEndpointMatcher(builder='b1', role='release'),
                        util.StopBuildEndpointMatcher(role='owner'),
                        util.AnyControlEndpointMatcher(role='admins'),
                    ],
                    roleMatchers=[
                        util.RolesFromUsername(roles=['release'], usernames=['alice']),
                        util.RolesFromOwner(role='owner'),
                    ]))
"""
USER_PASSWORD_AUTH = "util.UserPasswordAuth({'alice': 'pw1', 'bob': 'pw2'})"
REMOTE_USER_AUTH = "util.RemoteUserAuth()"


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def post(master, path: str, headers: dict, body: dict | None = None) -> tuple[int, dict]:
    status, data = master.request("POST", path, body if body is not None else {},
                                  {"Content-Type": "application/json", **headers}, user=None)
    return status, json.loads(data)


def whoami(master, headers: dict) -> dict:
    status, data = master.request("GET", "/api/v1/auth/whoami", headers=headers, user=None)
    assert status == 200, data
    return json.loads(data)


def test_a_buildbot_authz_config_decides_who_may_force_and_whoami_says_why(fleet):
    master = fleet.master(config=lambda pb, www: CONFIG.format(pb_port=pb, www_port=www,
                                                               auth=USER_PASSWORD_AUTH))
    fleet.slave(master)
    master.wait_attached("bs1")

    status, body = post(master, "/api/v1/builders/b1/force", basic("bob", "pw2"))
    assert (status, body["scope"]) == (403, "builds:force:b1"), body
    status, body = post(master, "/api/v1/builders/b2/force", basic("alice", "pw1"))
    assert (status, body["scope"]) == (403, "builds:force:b2"), body

    status, body = post(master, "/api/v1/builders/b1/force", basic("alice", "pw1"), {"reason": "release"})
    assert status == 200, body
    done = master.wait_request_complete(body["buildrequestid"])
    assert done["results"] == 0 and done["properties"]["owner"] == "alice"

    alice = whoami(master, basic("alice", "pw1"))
    assert (alice["user"], alice["source"], alice["roles"]) == (
        "alice", "c['www']['auth'] UserPasswordAuth", ["release"])
    origin = {s["scope"]: s["origin"] for s in alice["scopes"]}["builds:force:b1"]
    assert "allowRules[0] ForceBuildEndpointMatcher(builder='b1', role='release')" in origin
    assert "RolesFromUsername(roles=['release'], usernames=['alice'])" in origin
    assert {"builds:stop:b1", "builds:stop:b2"} <= {s["scope"] for s in alice["owner_scopes"]}
    bob = whoami(master, basic("bob", "pw2"))
    assert "builds:force:b1" not in {s["scope"] for s in bob["scopes"]} and bob["roles"] == []

    # The owner of a build may stop it (RolesFromOwner); someone else may not.
    build = next(b for b in master.get("/api/v1/builds")["builds"]
                 if b["buildrequestid"] == done["buildrequestid"])
    status, body = post(master, f"/api/v1/builds/{build['buildid']}/stop", basic("bob", "pw2"))
    assert (status, body["scope"]) == (403, "builds:stop:b1"), body
    status, body = post(master, f"/api/v1/builds/{build['buildid']}/stop", basic("alice", "pw1"))
    assert status in (200, 409), body  # allowed: the build has already finished
    # The same on the pages (HTTP basic from this very site).
    page_stop = f"/builds/{build['buildid']}/stop"
    status, _ = master.request("POST", page_stop, None, {**basic("bob", "pw2"), "Origin": master.url},
                               user=None)
    assert status == 403
    status, page = master.request("POST", page_stop, None, {**basic("alice", "pw1"), "Origin": master.url},
                                  user=None)
    assert status == 409 and b"not running" in page  # allowed, and the build is over

    checked = run_cli("buildmaster", "checkconfig", os.path.join(master.basedir, "master.cfg"), check=True)
    assert "auth: user 'alice' (c['www']['auth'] UserPasswordAuth): builds:force:b1 from" in checked.stdout


def test_remote_user_auth_believes_the_header_of_the_proxy(fleet):
    master = fleet.master(config=lambda pb, www: CONFIG.format(pb_port=pb, www_port=www,
                                                               auth=REMOTE_USER_AUTH))
    status, body = post(master, "/api/v1/builders/b1/force", {"REMOTE_USER": "bob@EXAMPLE.ORG"})
    assert (status, body["scope"]) == (403, "builds:force:b1"), body
    status, body = post(master, "/api/v1/builders/b1/force", {"REMOTE_USER": "alice@EXAMPLE.ORG"})
    assert status == 200, body
    alice = whoami(master, {"REMOTE_USER": "alice@EXAMPLE.ORG"})
    assert (alice["user"], alice["method"], alice["roles"]) == ("alice", "remote-user", ["release"])
