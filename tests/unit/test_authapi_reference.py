"""The ``auth`` service's reference (master/authapi/apireference.py and the ``APIEntry`` of each
route of master/authapi/api.py): every function we serve is the official client's own
(``taskcluster.generated.auth.Auth.funcinfo``: the same name, method, route, arguments, query and
schema names), the functions we do not serve are named in docs/taskcluster.md, and each output
schema validates what a real master (in memory) answers."""

import base64
import json
import pathlib

import jsonschema
import pytest_twisted
from taskcluster.generated.auth import Auth as OfficialAuth

from buildfarm.master.apicatalog import CATALOG
from buildfarm.master.authapi.apireference import AUTH
from fixtures.memoryhttp import render
from fixtures.memorymaster import MASTER_CFG, start_memory_master

NOW = 1_700_000_000.0
ROOT = pathlib.Path(__file__).resolve().parents[2]
ADMIN = {"authorization": "Basic " + base64.b64encode(b"admin:adm1n").decode()}
EXPIRES = "2099-01-01T00:00:00.000Z"
COMPARED = ("method", "route", "args", "query")
SCHEMAS = ("input", "output")  # ours may add one Taskcluster does not name (ping's output)


def served() -> dict[str, dict]:
    return {e["name"]: e for e in CATALOG.reference(AUTH.name)["entries"]}


def test_every_served_function_is_taskclusters_own_name_method_route_and_args():
    official = OfficialAuth.funcinfo
    for name, entry in served().items():
        assert name in official, f"{name} is not a function of Taskcluster's Auth API"
        for key in COMPARED:
            assert entry.get(key, []) == official[name].get(key, []), (name, key)
        for key in SCHEMAS:
            if key in official[name]:
                assert entry.get(key) == official[name][key], (name, key)


def test_the_issues_auth_functions_are_all_served():
    assert set(served()) >= {
        "ping", "currentScopes", "expandScopes", "testAuthenticate", "testAuthenticateGet", "client",
        "listClients", "createClient", "updateClient", "resetAccessToken", "enableClient",
        "disableClient", "deleteClient", "role", "listRoles", "listRoles2", "listRoleIds",
        "createRole", "updateRole", "deleteRole"}


def test_the_docs_name_every_function_of_taskclusters_auth_api_that_is_not_served():
    docs = (ROOT / "docs" / "taskcluster.md").read_text()
    for name in sorted(set(OfficialAuth.funcinfo) - set(served())):
        assert f"`{name}`" in docs, f"docs/taskcluster.md does not say that {name} is not served"


# -- output schemas against real answers ---------------------------------------------------

@pytest_twisted.async_yield_fixture
async def api(tmp_path):
    master = await start_memory_master(tmp_path, MASTER_CFG, now=NOW)
    resource = master.www.make_site().resource

    async def call(method: str, path: str, body: dict | None = None, **args):
        headers = dict(ADMIN)
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        response = await render(resource, method, f"/api/auth/v1{path}", body=data, args=args,
                                headers=headers)
        return response.code, response.body

    yield call
    await master.stopService()


def check(name: str, code: int, body: bytes) -> dict:
    """``body`` as JSON, validated against the output schema of the function ``name``."""
    assert code == 200, body
    answer = json.loads(body)
    output = served()[name].get("output")
    if output is not None:
        schema = AUTH.schemas.document(output.removeprefix("v1/").removesuffix(".json#"))
        jsonschema.Draft6Validator(schema, format_checker=jsonschema.FormatChecker()).validate(answer)
    return answer


@pytest_twisted.ensureDeferred
async def test_the_client_routes_answer_what_their_output_schemas_say(api):
    made = check("createClient", *await api("PUT", "/clients/ci/one", {
        "expires": EXPIRES, "description": "one", "scopes": ["builds:read"]}))
    assert made["accessToken"] and made["clientId"] == "ci/one"
    check("client", *await api("GET", "/clients/ci/one"))
    check("updateClient", *await api("POST", "/clients/ci/one", {"expires": EXPIRES, "description": "1"}))
    check("resetAccessToken", *await api("POST", "/clients/ci/one/reset"))
    check("disableClient", *await api("POST", "/clients/ci/one/disable"))
    check("enableClient", *await api("POST", "/clients/ci/one/enable"))
    listed = check("listClients", *await api("GET", "/clients/", prefix="ci/"))
    assert [c["clientId"] for c in listed["clients"]] == ["ci/one"]
    assert check("deleteClient", *await api("DELETE", "/clients/ci/one")) == {}


@pytest_twisted.ensureDeferred
async def test_the_role_and_scope_routes_answer_what_their_output_schemas_say(api):
    check("ping", *await api("GET", "/ping"))
    role = check("createRole", *await api("PUT", "/roles/team/a", {"scopes": ["x:y"], "description": "a"}))
    assert role["expandedScopes"] == ["assume:team/a", "x:y"]
    check("role", *await api("GET", "/roles/team/a"))
    check("updateRole", *await api("POST", "/roles/team/a", {"scopes": ["x:*"], "description": "a"}))
    assert [r["roleId"] for r in check("listRoles", *await api("GET", "/roles/"))] == ["team/a"]
    check("listRoles2", *await api("GET", "/roles2/"))
    assert check("listRoleIds", *await api("GET", "/roleids/"))["roleIds"] == ["team/a"]
    expanded = check("expandScopes", *await api("POST", "/scopes/expand", {"scopes": ["assume:team/a"]}))
    assert expanded["scopes"] == ["assume:team/a", "x:*"]
    assert "*" in check("currentScopes", *await api("GET", "/scopes/current"))["scopes"]
    assert check("deleteRole", *await api("DELETE", "/roles/team/a")) == {}
