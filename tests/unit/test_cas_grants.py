"""Build grants (master/cas/grants.py): what a step hands its slave for the Isolate API, checked
by the real IsolateAPI in memory on a real in-memory master: its scopes and no others, its
namespace only, until it expires; a changed or foreign grant is a 401."""

import base64
import hashlib
import json

import pytest
import pytest_twisted
from twisted.internet.task import Clock
from twisted.python.threadpool import ThreadPool

from buildfarm.master.cas import grants
from buildfarm.master.cas.api import PREFIX, IsolateAPI
from buildfarm.master.cas.filestore import FileStore
from buildfarm.master.cas.settings import CASSettings
from fixtures.memoryhttp import render
from fixtures.memorymaster import MASTER_CFG, memory_master_fixture, with_fast_password_checks

SECRET = b"s" * 32
NS = "default-gzip"
master = memory_master_fixture(MASTER_CFG)


@pytest.fixture
def api(master, tmp_path):
    with_fast_password_checks(master)
    pool = ThreadPool(minthreads=1, maxthreads=2, name="cas-grants-test")
    pool.start()
    settings = CASSettings(upload_secret=SECRET)
    yield IsolateAPI(master, FileStore(str(tmp_path / "cas"), master.reactor, pool), settings, master.reactor,
                     pool)
    pool.stop()


def grant(master, kinds=("read", "write"), namespace=NS, ttl_s=60.0, secret=SECRET) -> str:
    return grants.mint(secret, namespace, kinds, ttl_s, master.reactor, "build 7 step 2")


async def post(api, name: str, body: dict, token: str):
    response = await render(api.resource(), "POST", f"{PREFIX}/{name}", body=json.dumps(body).encode(),
                            headers={"Authorization": f"Bearer {token}"})
    return response.code, json.loads(response.body)


def preupload_body(namespace=NS) -> dict:
    return {"items": [{"digest": hashlib.sha1(b"x").hexdigest(), "size": 1, "is_isolated": False}],
            "namespace": namespace}


def retrieve_body(namespace=NS) -> dict:
    return {"digest": "0" * 40, "namespace": namespace}


@pytest_twisted.ensureDeferred
async def test_a_grant_gives_read_and_write_on_its_namespace(api, master):
    token = grant(master)
    code, answer = await post(api, "preupload", preupload_body(), token)
    assert code == 200 and len(answer["items"]) == 1
    code, answer = await post(api, "retrieve", retrieve_body(), token)
    assert code == 404  # authorized: the item is just not there


@pytest_twisted.ensureDeferred
async def test_a_grant_gives_nothing_on_another_namespace(api, master):
    token = grant(master)
    code, answer = await post(api, "retrieve", retrieve_body("sha256-gzip"), token)
    assert code == 403 and "cas:read:sha256-gzip" in answer["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_a_read_grant_cannot_write(api, master):
    code, answer = await post(api, "preupload", preupload_body(), grant(master, kinds=("read",)))
    assert code == 403 and "cas:write:default-gzip" in answer["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_a_grant_expires(api, master):
    token = grant(master, ttl_s=60)
    master.reactor.advance(59)
    assert (await post(api, "retrieve", retrieve_body(), token))[0] == 404
    master.reactor.advance(2)
    code, answer = await post(api, "retrieve", retrieve_body(), token)
    assert code == 401 and "expired" in answer["error"]["message"]


def reencoded(token: str, change) -> str:
    body, mac = token[len(grants.PREFIX):].split(".")
    fields = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    change(fields)
    raw = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return grants.PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + mac


@pytest.mark.parametrize("tamper", [
    lambda t: reencoded(t, lambda f: f.update(n="sha256-gzip", s=["cas:read:sha256-gzip"])),
    lambda t: reencoded(t, lambda f: f.update(x=f["x"] + 10**6)),
    lambda t: reencoded(t, lambda f: f.update(s=["cas:read:*"])),
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: t + "x",
    lambda t: grants.PREFIX + "garbage",
])
@pytest_twisted.ensureDeferred
async def test_a_changed_grant_is_refused(api, master, tamper):
    code, answer = await post(api, "retrieve", retrieve_body(), tamper(grant(master)))
    assert code == 401 and answer["error"]["code"] == 401


@pytest_twisted.ensureDeferred
async def test_a_grant_of_another_secret_is_refused(api, master):
    code, answer = await post(api, "retrieve", retrieve_body(), grant(master, secret=b"other" * 8))
    assert code == 401 and "signature" in answer["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_other_bearer_tokens_are_still_the_users(api, master):
    code, answer = await post(api, "retrieve", retrieve_body(), "not-a-grant")
    assert code == 401 and "unknown bearer token" in answer["error"]["message"]


def test_a_grant_is_not_an_upload_ticket():
    # The same secret signs both: the purpose-derived key keeps them apart.
    assert grants.grant_key(SECRET) != SECRET


def test_check_reads_back_what_mint_wrote():
    clock = Clock()
    clock.advance(1000)
    token = grants.mint(SECRET, "sha256-deflate", ("read",), 30, clock, "build 1")
    assert grants.check(SECRET, token, clock) == grants.Grant(
        "sha256-deflate", ("cas:read:sha256-deflate",), 1030.0, "build 1")
    with pytest.raises(ValueError, match="read and/or write"):
        grants.mint(SECRET, NS, ("admin",), 30, clock, "build 1")


@pytest_twisted.ensureDeferred
async def test_a_grant_under_the_running_configs_secret_is_accepted_by_an_api_made_before(api, master):
    # A reconfig gives steps a new c['cas']: the API, made with the old settings, still checks
    # their grants under the running configuration's secret.
    assert master.config.cas.upload_secret != SECRET
    token = grant(master, secret=master.config.cas.upload_secret)
    assert (await post(api, "retrieve", retrieve_body(), token))[0] == 404
