"""Authorization end to end, over HTTP against a real master process: forcing a build as
anonymous (401), as a user without the scope (403 naming it), as an authorized user (200,
the build request's owner is that user), a cross-site cookie post and a cross-site post
with cached basic credentials (403), and the audit of each."""

import base64
import http.client
import json
import re
from urllib.parse import urlencode

CONFIG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['builders'] = [util.BuilderConfig(name='runtests', slavenames=['bs1'],
                 factory=util.BuildFactory([steps.ShellCommand(command=['echo', 'hello'])]))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['runtests'])]
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['users'] = [util.User('oncall', password='s3cret', scopes=['builds:*', 'audit:read', 'slaveapi:*']),
              util.User('viewer', password='v1ew', scopes=['builds:read'])]
"""
EVIL = "http://evil.example"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def call(master, method: str, path: str, headers: dict | None = None, body: bytes = b""):
    """``(status, headers, body)`` of one request, redirects not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", master.www_port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def request_count(master) -> int:
    return master.get("/api/v1/buildrequests")["meta"]["total"]


def test_force_needs_an_authorized_caller_from_this_site_and_every_attempt_is_audited(fleet):
    master = fleet.master(config=lambda pb, www: CONFIG.format(pb_port=pb, www_port=www))
    force = "/api/v1/builders/runtests/force"
    json_type = {"Content-Type": "application/json"}

    status, headers, body = call(master, "POST", force, json_type, b"{}")
    assert status == 401 and "Basic" in headers.get("WWW-Authenticate", ""), body
    viewer = {**json_type, "Authorization": basic("viewer", "v1ew")}
    status, _, body = call(master, "POST", force, viewer, b"{}")
    assert status == 403 and json.loads(body)["scope"] == "builds:force:runtests"
    assert request_count(master) == 0

    status, _, body = call(master, "POST", force, {**json_type, "Authorization": basic("oncall", "s3cret")},
                           b'{"reason": "e2e"}')
    assert status == 200, body
    brid = json.loads(body)["buildrequestid"]
    assert master.get(f"/api/v1/buildrequests/{brid}")["properties"]["owner"] == "oncall"

    # A browser session of oncall: a post from another site is refused even with the token.
    login = urlencode({"username": "oncall", "password": "s3cret"}).encode()
    status, headers, _ = call(master, "POST", "/login", {"Content-Type": "application/x-www-form-urlencoded",
                                                         "Origin": master.url}, login)
    assert status == 303
    cookie = headers["Set-Cookie"].split(";")[0]
    _, _, page = call(master, "GET", "/builders/runtests", {"Cookie": cookie})
    token = CSRF_INPUT.search(page.decode()).group(1)
    status, _, body = call(master, "POST", force, {**json_type, "Cookie": cookie, "Origin": EVIL,
                                                   "X-CSRF-Token": token}, b"{}")
    assert status == 403 and b"another site" in body
    status, _, _ = call(master, "POST", "/slaveapi/slaves/bs1/actions/disable",
                        {"Authorization": basic("oncall", "s3cret"), "Origin": EVIL})
    assert status == 403  # cached basic credentials carried by a cross-site form
    assert request_count(master) == 1

    status, _, body = call(master, "GET", "/api/v1/audit", {"Authorization": basic("oncall", "s3cret")})
    assert status == 200
    audit = json.loads(body)["audit"]
    rows = [(r["surface"], r["user"], r["outcome"], r["status"], r["path"]) for r in audit]
    assert rows == [
        ("slaveapi", "oncall", "refused", 403, "/slaveapi/slaves/bs1/actions/disable"),
        ("api", "oncall", "refused", 403, force),
        ("api", "oncall", "done", 200, force),
        ("api", "viewer", "refused", 403, force),
        ("api", "anonymous", "refused", 401, force),
    ]
