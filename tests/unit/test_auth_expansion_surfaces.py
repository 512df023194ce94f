"""Role expansion at request time, on every HTTP surface of a real master in memory:
``/api/v1/auth/whoami`` lists the caller's scopes expanded through the roles, and a caller
whose scopes a chain of parameterized roles expands past the scope length limit gets a 403
JSON refusal with a ``message`` (never a 500) on the JSON API, the SlaveAPI, the Endpoints APIs
and the Auth API, with Basic and with Hawk credentials."""

import json

import mohawk
import pytest
import pytest_twisted

from buildfarm.master.auth.scopes import MAX_EXPANDED_SCOPE_CHARS
from fixtures.memoryhttp import basic, render
from fixtures.memorymaster import MASTER_CFG, start_memory_master

NOW = 1_700_000_000.0
PAD = 4000  # each role of the chain adds this much: two hops stay within the limit, a long scope not
LONG_SCOPE = "assume:chain-a:" + "r" * 300
TOKEN = "long-token-0123456789"  # noqa: S105 - a test credential
CFG = MASTER_CFG + f"""
c['roles'] = [
    {{'roleId': 'team/ops', 'scopes': ['slaves:read', 'assume:team/base']}},
    {{'roleId': 'team/base', 'scopes': ['builds:read']}},
    {{'roleId': 'chain-a:*', 'scopes': ['assume:chain-b:{"p" * PAD}<..>']}},
    {{'roleId': 'chain-b:*', 'scopes': ['assume:chain-c:{"q" * PAD}<..>']}},
    {{'roleId': 'chain-c:*', 'scopes': ['z:<..>']}},
]
c['users'] += [util.User('ops', password='pw', scopes=['assume:team/ops']),
               util.User('long', password='pw', scopes=['{LONG_SCOPE}'])]
c['clients'] = [{{'clientId': 'ci/long', 'accessToken': '{TOKEN}', 'scopes': ['{LONG_SCOPE}']}}]
"""
SURFACES = ["/api/v1/builders", "/api/buildfarm/v1/builders", "/slaveapi/slaves", "/api/slaveapi/v1/slaves",
            "/_ah/api/swarming/v1/tasks/list", "/api/tasks/v1/tasks/list", "/api/auth/v1/scopes/current",
            "/api/v1/auth/whoami"]



def hawk(path: str) -> dict:
    sender = mohawk.Sender({"id": "ci/long", "key": TOKEN, "algorithm": "sha256"},
                           f"http://localhost:8010{path}", "GET", content="", content_type="",
                           _timestamp=int(NOW))
    return {"authorization": sender.request_header}


@pytest_twisted.async_yield_fixture
async def site(tmp_path):
    master = await start_memory_master(tmp_path, CFG, now=NOW)
    resource = master.www.make_site().resource

    async def get(path: str, headers: dict):
        response = await render(resource, "GET", path, headers=headers)
        return response.code, json.loads(response.body)

    yield get
    await master.stopService()


def test_the_chain_passes_the_limit_only_with_a_long_scope():
    assert len("z:" + "q" * PAD + "p" * PAD) < MAX_EXPANDED_SCOPE_CHARS  # the roles are accepted
    assert len("z:" + "q" * PAD + "p" * PAD + LONG_SCOPE) > MAX_EXPANDED_SCOPE_CHARS


@pytest_twisted.ensureDeferred
async def test_whoami_lists_the_scopes_expanded_through_the_roles(site):
    code, me = await site("/api/v1/auth/whoami", basic("ops", "pw"))
    assert code == 200 and me["user"] == "ops"
    assert [s["scope"] for s in me["scopes"] if s["origin"] == "c['users']"] == ["assume:team/ops"]
    assert {"assume:team/ops", "assume:team/base", "slaves:read", "builds:read"} <= set(me["expanded_scopes"])
    code, nobody = await site("/api/v1/auth/whoami", {})
    assert code == 200 and "builds:read" in nobody["expanded_scopes"]


@pytest.mark.parametrize("path", SURFACES)
@pytest_twisted.ensureDeferred
async def test_an_expansion_past_the_limit_is_a_403_with_a_message_on_every_surface(site, path):
    for credentials in (basic("long", "pw"), hawk(path)):
        code, body = await site(path, credentials)
        assert code == 403, (path, body)
        text = json.dumps(body)
        assert "cannot be expanded through the roles" in text and "message" in body, (path, body)
