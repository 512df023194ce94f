"""Hawk credentials against a real master, with the official ``taskcluster`` client (sync and
``taskcluster.aio``): a client's credentials, temporary credentials (named and unnamed) made by
``createTemporaryCredentials``, signed URLs from ``buildSignedUrl``, ``authorizedScopes``, and
every refusal, each a 401 naming its check; Hawk on the Swarming API and the SlaveAPI too.

The client reaches buildfarm's JSON API through tiny references of our own: ``serviceName``
``v1`` and ``apiVersion`` ``auth``/``builders``/``slaves`` make the client's
``<rootUrl>/api/<service>/<version>/<route>`` the API's ``/api/v1/...`` URLs.

Database clients (to disable one, or reset its token) are written by this test process through
a ``ClientStore`` on the master's own SQLite file and clients key: the master reads a client on
every call, so another process's change counts at once.
"""

import datetime
import json
import os
import time

import mohawk
import pytest
import pytest_twisted
import requests
import taskcluster
import taskcluster.aio.asyncclient
import taskcluster.client
from twisted.internet import reactor

from buildfarm.master.auth.clients import CLIENTS_KEY_FILE, ClientStore, load_or_create_key
from buildfarm.master.db.connector import DBConnector
from fixtures.asyncrun import run_coroutine
from fixtures.daemons import MASTER_CFG

pytestmark = pytest.mark.integration


def _reference(version: str, entries: list[dict]) -> dict:
    return {"reference": {"$schema": "/schemas/common/api-reference-v0.json#", "serviceName": "v1",
                          "apiVersion": version, "title": version, "description": version,
                          "entries": [{"type": "function", "stability": "stable", "title": e["name"],
                                       "description": e["name"], **e} for e in entries]}}


WHOAMI = _reference("auth", [{"method": "get", "route": "/whoami", "name": "whoami", "args": []}])
BUILDERS = _reference("builders", [
    {"method": "get", "route": "/<name>", "name": "builder", "args": ["name"]},
    {"method": "post", "route": "/<name>/force", "name": "force", "args": ["name"], "input": "force.json"},
])
SLAVES = _reference("slaves", [{"method": "get", "route": "/<name>", "name": "slave", "args": ["name"]}])
Whoami = taskcluster.client.createApiClient("Whoami", WHOAMI)
Builders = taskcluster.client.createApiClient("Builders", BUILDERS)
Slaves = taskcluster.client.createApiClient("Slaves", SLAVES)


def aio_api_client(name: str, reference: dict) -> type:
    """``taskcluster.aio.createApiClient``'s class on ``AsyncBaseClient``: in taskcluster 113.2.0
    the aio ``createApiClient`` bases its class on the *sync* ``BaseClient``, whose calls are not
    awaitable; the generated aio classes (``taskcluster.aio.Auth``) are based so."""
    made = taskcluster.aio.asyncclient.createApiClient(name, reference)
    return type(name, (taskcluster.aio.asyncclient.AsyncBaseClient,),
                {k: v for k, v in vars(made).items() if not k.startswith("__")})


AioBuilders = aio_api_client("Builders", BUILDERS)

BUILDER = {"clientId": "ci/builder", "accessToken": "builder-token-0123456789"}
READER = {"clientId": "ci/reader", "accessToken": "reader-token-0123456789"}
CLIENTS_CFG = """
c['www']['anonymous_scopes'] = []
c['clients'] = [
    {'clientId': 'ci/builder', 'accessToken': 'builder-token-0123456789',
     'scopes': ['builds:*', 'slaves:read', 'tasks:read', 'slaveapi:read', 'auth:create-client:ci/worker-*'],
     'description': 'CI'},
    {'clientId': 'ci/reader', 'accessToken': 'reader-token-0123456789', 'scopes': ['builds:read']},
    {'clientId': 'ci/gone', 'accessToken': 'gone-token-0123456789', 'scopes': ['builds:read'],
     'expires': '2001-01-01T00:00:00Z'},
]
"""


@pytest.fixture
def master(fleet):
    return fleet.master(config=lambda pb, www: MASTER_CFG.format(
        slavenames=["bs1"], command=["echo", "hello"], pb_port=pb, www_port=www) + CLIENTS_CFG)


def options(master, credentials=None, **more) -> dict:
    found = {"rootUrl": master.url, "maxRetries": 0, **more}
    if credentials is not None:
        found["credentials"] = credentials
    return found


def temporary(issuer: dict, scopes: list[str], name: str | None = None, start_s: int = -60,
              expiry_s: int = 3600) -> dict:
    now = datetime.datetime.now(datetime.UTC)
    return taskcluster.createTemporaryCredentials(
        issuer["clientId"], issuer["accessToken"], now + datetime.timedelta(seconds=start_s),
        now + datetime.timedelta(seconds=expiry_s), scopes, name)


def refused(call) -> dict:
    """The JSON body of the 401 ``call`` gets."""
    with pytest.raises(taskcluster.exceptions.TaskclusterAuthFailure) as caught:
        call()
    assert caught.value.status_code == 401, caught.value
    return caught.value.body


def raw_get(master, path: str, header: str) -> tuple[int, dict]:
    response = requests.get(master.url + path, headers={"Authorization": header}, timeout=10)
    return response.status_code, response.json()


def sender(master, path: str, credentials: dict, **kwargs) -> mohawk.Sender:
    key = {"id": credentials["clientId"], "key": credentials["accessToken"], "algorithm": "sha256"}
    return mohawk.Sender(key, master.url + path, "GET", content="", content_type="", **kwargs)


class DatabaseClients:
    """The master's database clients, written from this process."""

    def __init__(self, master):
        self.master = master
        self.db = None
        self.store = None

    async def __aenter__(self):
        self.db = DBConnector("sqlite:///state.sqlite", self.master.basedir, reactor)
        await self.db.setup()
        self.db.startService()
        key = load_or_create_key(os.path.join(self.master.basedir, CLIENTS_KEY_FILE))
        self.store = ClientStore(reactor, self.db, master_key=key)
        return self.store

    async def __aexit__(self, *exc):
        await self.db.stopService()


def in_thread(f, *args):
    from twisted.internet import threads

    return threads.deferToThread(f, *args)


# -- a client's credentials -----------------------------------------------------------------

def test_a_client_signs_reads_and_a_forced_build_with_its_payload_hashed(master):
    me = Whoami(options(master, BUILDER)).whoami()
    assert (me["user"], me["method"], me["authenticated"]) == ("ci/builder", "hawk", True)
    assert Builders(options(master, BUILDER)).builder("runtests")["name"] == "runtests"
    forced = Builders(options(master, BUILDER)).force("runtests", {"reason": "from taskcluster"})
    assert forced["buildrequestid"] > 0
    anonymous = Builders(options(master))
    assert refused(lambda: anonymous.builder("runtests"))


def test_the_aio_client_signs_as_the_sync_one_does(master):
    async def calls():
        async with taskcluster.aio.createSession() as session:
            client = AioBuilders(options(master, BUILDER), session=session)
            forced = await client.force("runtests", {"reason": "aio"})
            read = await AioBuilders(options(master, READER), session=session).builder("runtests")
            return forced, read

    forced, read = run_coroutine(calls)
    assert forced["buildrequestid"] > 0 and read["name"] == "runtests"


def test_a_missing_scope_is_403_naming_it(master):
    with pytest.raises(taskcluster.exceptions.TaskclusterRestFailure) as caught:
        Slaves(options(master, READER)).slave("bs1")
    assert caught.value.status_code == 403 and caught.value.body["scope"] == "slaves:read"


def test_authorized_scopes_restrict_a_call(master):
    narrowed = Builders(options(master, BUILDER, authorizedScopes=["builds:read"]))
    assert narrowed.builder("runtests")["name"] == "runtests"
    with pytest.raises(taskcluster.exceptions.TaskclusterRestFailure) as caught:
        narrowed.force("runtests", {"reason": "no"})
    assert caught.value.status_code == 403 and caught.value.body["scope"] == "builds:force:runtests"
    beyond = Builders(options(master, READER, authorizedScopes=["builds:force:runtests"]))
    assert "Hawk bad-authorized-scopes" in refused(lambda: beyond.builder("runtests"))["error"]


# -- temporary credentials and signed URLs -------------------------------------------------------

def test_unnamed_and_named_temporary_credentials_act_with_the_certificates_scopes(master):
    unnamed = temporary(BUILDER, ["builds:read"])
    assert Whoami(options(master, unnamed)).whoami()["user"] == "ci/builder"
    with pytest.raises(taskcluster.exceptions.TaskclusterRestFailure) as caught:
        Builders(options(master, unnamed)).force("runtests", {"reason": "no"})
    assert caught.value.status_code == 403
    named = temporary(BUILDER, ["builds:force:runtests"], name="ci/worker-7")
    assert Whoami(options(master, named)).whoami()["user"] == "ci/worker-7"
    assert Builders(options(master, named)).force("runtests", {"reason": "named"})["buildrequestid"] > 0


def test_a_signed_url_from_build_signed_url_is_a_get_without_headers(master):
    url = Whoami(options(master, BUILDER)).buildSignedUrl("whoami")
    assert "bewit=" in url
    me = requests.get(url, timeout=10).json()
    assert (me["user"], me["method"]) == ("ci/builder", "bewit")
    elsewhere = url.replace("/api/v1/auth/whoami", "/api/v1/builders/runtests")  # signed for another URL
    answer = requests.get(elsewhere, timeout=10)
    assert answer.status_code == 401 and "Hawk bad-bewit" in answer.json()["error"]
    expired = Whoami(options(master, BUILDER)).buildSignedUrl("whoami", expiration=-60)
    answer = requests.get(expired, timeout=10)
    assert answer.status_code == 401 and "Hawk bad-bewit" in answer.json()["error"]


# -- every refusal -------------------------------------------------------------------------------

def test_each_failed_check_is_a_401_that_names_it_and_no_secret(master):
    def body_of(credentials, **more):
        return refused(lambda: Whoami(options(master, credentials, **more)).whoami())

    cases = {
        "unknown-client": body_of({"clientId": "ci/nobody", "accessToken": "x"}),
        "expired": body_of({"clientId": "ci/gone", "accessToken": "gone-token-0123456789"}),
        "bad-mac": body_of({"clientId": "ci/reader", "accessToken": "wrong"}),
        "bad-certificate": body_of({**temporary(BUILDER, ["builds:read"]),
                                    "certificate": json.dumps({**json.loads(
                                        temporary(BUILDER, ["builds:read"])["certificate"]),
                                        "scopes": ["builds:*"]})}),
    }
    for reason, body in cases.items():
        assert body["error"].startswith(f"Hawk {reason}:"), (reason, body)
        assert "token-0123456789" not in json.dumps(body)
    lacking = body_of(temporary(READER, ["builds:force:runtests"]))
    assert "Hawk bad-certificate" in lacking["error"] and "builds:force:runtests" in lacking["error"]
    unnamed_scope = body_of(temporary(READER, ["builds:read"], name="ci/worker-1"))
    assert "auth:create-client:ci/worker-1" in unnamed_scope["error"]


def test_a_client_whose_clock_is_off_gets_skew_and_a_replayed_header_gets_replay(master):
    off = sender(master, "/api/v1/auth/whoami", BUILDER, _timestamp=int(time.time()) - 3600)
    status, body = raw_get(master, "/api/v1/auth/whoami", off.request_header)
    assert status == 401 and body["error"].startswith("Hawk skew:")
    once = sender(master, "/api/v1/auth/whoami", BUILDER)
    assert raw_get(master, "/api/v1/auth/whoami", once.request_header)[0] == 200
    status, body = raw_get(master, "/api/v1/auth/whoami", once.request_header)
    assert status == 401 and body["error"].startswith("Hawk replay:")


@pytest_twisted.ensureDeferred
async def test_a_disabled_or_revoked_issuer_ends_its_temporary_credentials_at_once(master):
    async with DatabaseClients(master) as clients:
        _, token = await clients.create("ci/issuer", time.time() + 3600,
                                        scopes=["builds:read", "auth:create-client:ci/worker-*"])
        issuer = {"clientId": "ci/issuer", "accessToken": token}
        unnamed, named = temporary(issuer, ["builds:read"]), temporary(issuer, ["builds:read"], "ci/worker-9")

        def who(credentials):
            return Whoami(options(master, credentials)).whoami()["user"]

        assert [await in_thread(who, c) for c in (issuer, unnamed, named)] == ["ci/issuer", "ci/issuer",
                                                                                "ci/worker-9"]
        await clients.disable("ci/issuer")
        for credentials in (issuer, unnamed, named):
            body = await in_thread(refused, lambda c=credentials: who(c))
            assert body["error"].startswith("Hawk disabled:"), body
        await clients.enable("ci/issuer")
        assert await in_thread(who, named) == "ci/worker-9"
        await clients.reset_access_token("ci/issuer")
        for credentials in (unnamed, named):
            body = await in_thread(refused, lambda c=credentials: who(c))
            assert body["error"].startswith("Hawk bad-certificate:"), body
        await clients.delete("ci/issuer")
        body = await in_thread(refused, lambda: who(named))
        assert body["error"].startswith("Hawk unknown-client:"), body


def test_basic_auth_and_a_users_password_as_hawk_key_both_still_work(master):
    from fixtures.daemons import TEST_PASSWORD, TEST_USER

    status, _ = master.request("GET", "/api/v1/builders/runtests")
    assert status == 200
    me = Whoami(options(master, {"clientId": TEST_USER, "accessToken": TEST_PASSWORD})).whoami()
    assert (me["user"], me["method"]) == (TEST_USER, "hawk")


@pytest.mark.parametrize("path", ["/_ah/api/swarming/v1/tasks/list", "/slaveapi/slaves"])
def test_hawk_is_taken_on_the_swarming_api_and_the_slaveapi_too(master, path):
    assert raw_get(master, path, sender(master, path, BUILDER).request_header)[0] == 200
    assert requests.get(master.url + path, timeout=10).status_code == 401
    wrong = sender(master, path, {**BUILDER, "accessToken": "wrong"})
    status, body = raw_get(master, path, wrong.request_header)
    assert status == 401 and "Hawk bad-mac" in json.dumps(body)


# -- the official client's message on every surface ------------------------------------------

def test_every_surface_gives_the_official_client_a_message_for_a_401_and_a_403(master):
    from buildfarm.common import client

    calls = {  # a call the reader lacks the scope of, on each surface
        "/api/v1": (lambda o: Slaves(o).slave("bs1"), "slaves:read"),
        "buildfarm": (lambda o: client.Buildfarm(o).listSlaves(), "slaves:read"),
        "slaveapi": (lambda o: client.SlaveAPI(o).listSlaves(), "slaveapi:read"),
        "tasks (Endpoints)": (lambda o: client.Tasks(o).listTasks(), "tasks:read"),
        "auth": (lambda o: taskcluster.Auth(o).currentScopes(), "auth:current-scopes"),
    }
    wrong = {**READER, "accessToken": "wrong"}
    for surface, (call, scope) in calls.items():
        with pytest.raises(taskcluster.exceptions.TaskclusterRestFailure) as caught:
            call(options(master, READER))
        assert caught.value.status_code == 403, surface
        assert scope in str(caught.value) and "ci/reader" in str(caught.value), (surface, str(caught.value))
        with pytest.raises(taskcluster.exceptions.TaskclusterAuthFailure) as caught:
            call(options(master, wrong))
        assert caught.value.status_code == 401, surface
        assert str(caught.value).startswith("Hawk bad-mac:"), (surface, str(caught.value))
        assert "token-0123456789" not in str(caught.value)
