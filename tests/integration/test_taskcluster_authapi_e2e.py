"""The Auth service (``/api/auth/v1/``) of a real master, driven by the official ``taskcluster``
client's ``taskcluster.Auth`` (sync) and ``taskcluster.aio.Auth``, every call signed with Hawk
by the client: ping, currentScopes and expandScopes through master.cfg's roles, roles and clients
created, read, listed (paged), changed and deleted, the test client (testAuthenticate, and
testAuthenticateGet through a signed URL), and the refusals: a 403 whose body names the required
and the unsatisfied scopes, escalation refused."""


import pytest
import requests
import taskcluster
import taskcluster.aio
import taskcluster.client
from taskcluster.exceptions import TaskclusterAuthFailure, TaskclusterFailure

from fixtures.asyncrun import run_coroutine
from fixtures.daemons import MASTER_CFG

pytestmark = pytest.mark.integration

ADMIN = {"clientId": "admin", "accessToken": "admin-token-0123456789"}
LIMITED = {"clientId": "limited", "accessToken": "limited-token-0123456789"}
ROLES_CFG = """
c['www']['anonymous_scopes'] = []
c['roles'] = [
    {'roleId': 'project:ci:*', 'scopes': ['secrets:get:ci/<..>', 'builds:read'], 'description': 'CI'},
    {'roleId': 'admins', 'scopes': ['auth:*', 'builds:*', 'queue:*', 'assume:team/*']},
]
c['clients'] = [
    {'clientId': 'admin', 'accessToken': 'admin-token-0123456789',
     'scopes': ['assume:admins', 'assume:project:ci:linux']},
    {'clientId': 'limited', 'accessToken': 'limited-token-0123456789',
     'scopes': ['auth:create-role:team/*', 'auth:create-client:team/*', 'auth:current-scopes',
                'builds:read']},
]
"""
EXPIRES = "2099-01-01T00:00:00.000Z"


@pytest.fixture
def master(fleet):
    return fleet.master(config=lambda pb, www: MASTER_CFG.format(
        slavenames=["bs1"], command=["echo", "hello"], pb_port=pb, www_port=www) + ROLES_CFG)


def auth(master, credentials=None) -> taskcluster.Auth:
    options = {"rootUrl": master.url, "maxRetries": 0}
    if credentials is not None:
        options["credentials"] = credentials
    return taskcluster.Auth(options)


def refusal(call, status: int) -> dict:
    """The JSON body of the ``status`` refusal ``call`` gets."""
    with pytest.raises(TaskclusterFailure) as caught:
        call()
    assert caught.value.status_code == status, caught.value
    return caught.value.body


def test_ping_needs_no_credentials(master):
    assert auth(master).ping()["alive"] is True


def test_current_scopes_are_expanded_through_the_config_roles(master):
    scopes = auth(master, ADMIN).currentScopes()["scopes"]
    assert {"auth:*", "builds:*", "queue:*", "secrets:get:ci/linux", "assume:admins"} <= set(scopes)
    assert "builds:read" not in scopes  # covered by builds:* (normalised)


def test_expand_scopes(master):
    expanded = auth(master, ADMIN).expandScopes({"scopes": ["assume:project:ci:mac", "x:y"]})
    assert expanded == {"scopes": ["assume:project:ci:mac", "builds:read", "secrets:get:ci/mac", "x:y"]}


def test_roles_crud_and_paging(master):
    admin = auth(master, ADMIN)
    created = admin.createRole("team/infra", {"scopes": ["assume:project:ci:linux", "builds:force:*"],
                                              "description": "infra"})
    assert created["roleId"] == "team/infra" and created["description"] == "infra"
    assert "secrets:get:ci/linux" in created["expandedScopes"]
    assert admin.role("team/infra")["scopes"] == ["assume:project:ci:linux", "builds:force:*"]
    updated = admin.updateRole("team/infra", {"scopes": ["builds:force:*"], "description": "less"})
    assert updated["scopes"] == ["builds:force:*"] and "secrets:get:ci/linux" not in updated["expandedScopes"]
    ids = [r["roleId"] for r in admin.listRoles()]
    assert ids == ["admins", "project:ci:*", "team/infra"]
    pages, query = [], {"limit": 2}
    while True:
        page = admin.listRoleIds(query=query)
        pages.append(page["roleIds"])
        if "continuationToken" not in page:
            break
        query = {"limit": 2, "continuationToken": page["continuationToken"]}
    assert pages == [["admins", "project:ci:*"], ["team/infra"]]
    admin.deleteRole("team/infra")
    assert refusal(lambda: admin.role("team/infra"), 404)["code"] == "ResourceNotFound"
    assert refusal(lambda: admin.deleteRole("admins"), 409)["code"] == "RequestConflict"  # master.cfg's


def test_a_role_changes_what_a_client_holds_at_once(master):
    admin = auth(master, ADMIN)
    created = admin.createClient("team/bot", {"expires": EXPIRES, "scopes": ["assume:team/bot-role"],
                                              "description": "a bot"})
    bot = auth(master, {"clientId": "team/bot", "accessToken": created["accessToken"]})
    refusal(bot.currentScopes, 403)
    admin.createRole("team/bot-role", {"scopes": ["auth:current-scopes"], "description": ""})
    assert "auth:current-scopes" in bot.currentScopes()["scopes"]


def test_clients_crud_reset_disable_and_paging(master):
    admin = auth(master, ADMIN)
    created = admin.createClient("team/one", {"expires": EXPIRES, "description": "first",
                                              "scopes": ["auth:current-scopes", "assume:project:ci:linux"]})
    assert created["clientId"] == "team/one" and len(created["accessToken"]) >= 22
    assert "secrets:get:ci/linux" in created["expandedScopes"]
    one = {"clientId": "team/one", "accessToken": created["accessToken"]}
    assert "secrets:get:ci/linux" in auth(master, one).currentScopes()["scopes"]
    assert admin.client("team/one")["description"] == "first"
    updated = admin.updateClient("team/one", {"expires": EXPIRES, "description": "changed",
                                              "scopes": ["auth:current-scopes"]})
    assert (updated["description"], updated["scopes"]) == ("changed", ["auth:current-scopes"])
    admin.disableClient("team/one")
    assert refusal(auth(master, one).currentScopes, 401)["code"] == "AuthenticationFailed"
    admin.enableClient("team/one")
    assert auth(master, one).currentScopes()["scopes"]
    reset = admin.resetAccessToken("team/one")
    with pytest.raises(TaskclusterAuthFailure):
        auth(master, one).currentScopes()
    assert auth(master, {"clientId": "team/one", "accessToken": reset["accessToken"]}).currentScopes()
    admin.createClient("team/two", {"expires": EXPIRES, "description": ""})
    seen, query = [], {"prefix": "team/", "limit": 1}
    while True:
        page = admin.listClients(query=query)
        seen += [c["clientId"] for c in page["clients"]]
        if "continuationToken" not in page:
            break
        query = {**query, "continuationToken": page["continuationToken"]}
    assert seen == ["team/one", "team/two"]
    admin.deleteClient("team/one")
    assert refusal(lambda: admin.client("team/one"), 404)["code"] == "ResourceNotFound"


def test_a_403_names_the_required_and_the_unsatisfied_scopes(master):
    limited = auth(master, LIMITED)
    body = refusal(lambda: limited.createRole("ops", {"scopes": [], "description": ""}), 403)
    assert body["code"] == "InsufficientScopes"
    assert body["unsatisfied"] == "auth:create-role:ops"
    assert "auth:create-role:ops" in body["message"]


def test_escalation_is_refused(master):
    limited = auth(master, LIMITED)
    # May create roles and clients under team/, but not give scopes it does not hold.
    body = refusal(lambda: limited.createRole("team/x", {"scopes": ["builds:read", "queue:*"],
                                                         "description": ""}), 403)
    assert body["required"] == {"AllOf": ["auth:create-role:team/x", "builds:read", "queue:*"]}
    assert body["unsatisfied"] == "queue:*"
    body = refusal(lambda: limited.createClient("team/y", {"expires": EXPIRES, "description": "",
                                                           "scopes": ["assume:admins"]}), 403)
    assert body["unsatisfied"] == "assume:admins"
    created = limited.createRole("team/x", {"scopes": ["builds:read"], "description": "ok"})
    assert created["scopes"] == ["builds:read"]
    # the admin widens it; the limited client cannot add more again
    auth(master, ADMIN).updateRole("team/x", {"scopes": ["builds:read", "queue:a"], "description": ""})
    assert refusal(lambda: auth(master, ADMIN).client("nobody"), 404)


def test_the_test_client_and_a_signed_url(master):
    tester = auth(master, {"clientId": "tester", "accessToken": "no-secret"})
    answer = tester.testAuthenticate({"clientScopes": ["test:a:*", "assume:project:ci:z"],
                                      "requiredScopes": ["test:a:b"]})
    assert answer["clientId"] == "tester"
    assert "secrets:get:ci/z" in answer["scopes"]
    body = refusal(lambda: tester.testAuthenticate({"clientScopes": ["test:a"],
                                                    "requiredScopes": ["test:b"]}), 403)
    assert body["unsatisfied"] == "test:b"
    url = tester.buildSignedUrl("testAuthenticateGet")
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["clientId"] == "tester"
    wrong = auth(master, {"clientId": "tester", "accessToken": "wrong"})
    assert refusal(lambda: wrong.testAuthenticate({"clientScopes": [], "requiredScopes": []}), 401)


def test_the_aio_client_drives_the_same_service(master):
    async def calls():
        async with taskcluster.aio.createSession() as session:
            admin = taskcluster.aio.Auth({"rootUrl": master.url, "credentials": ADMIN, "maxRetries": 0},
                                         session=session)
            assert (await admin.ping())["alive"]
            role = await admin.createRole("team/aio", {"scopes": ["builds:read"], "description": "aio"})
            scopes = (await admin.currentScopes())["scopes"]
            client = await admin.createClient("team/aio", {"expires": EXPIRES, "description": "",
                                                           "scopes": ["assume:team/aio"]})
            await admin.deleteClient("team/aio")
            await admin.deleteRole("team/aio")
            return role, scopes, client

    role, scopes, client = run_coroutine(calls)
    assert role["expandedScopes"] == ["assume:team/aio", "builds:read"]
    assert "auth:*" in scopes
    assert "builds:read" in client["expandedScopes"]


def test_bad_input_is_a_400_in_taskclusters_shape(master):
    admin = auth(master, ADMIN)
    for call, says in [
        (lambda: admin.createRole("bad**", {"scopes": [], "description": ""}), "'**'"),
        (lambda: admin.createRole("team/r", {"scopes": "builds:read", "description": ""}), "list of strings"),
        (lambda: admin.createRole("team/r", {"scopes": ["x<..>"], "description": ""}), "does not end in '*'"),
        (lambda: admin.createClient("team/z", {"description": ""}), "expires is required"),
        (lambda: admin.createClient("team/z", {"expires": "soon", "description": ""}), "ISO-8601"),
        (lambda: admin.listRoleIds(query={"limit": "many"}), "limit must be a positive integer"),
        (lambda: admin.listClients(query={"continuationToken": "!!"}), ""),
    ]:
        body = refusal(call, 400)
        assert body["code"] == "InputError" and says in body["message"], body
    response = requests.put(f"{master.url}/api/auth/v1/roles/team%2Fr", data=b"{not json",
                            headers={"content-type": "application/json"}, timeout=10)
    assert response.status_code in (400, 401) and "code" in response.json()


def test_a_client_made_from_the_served_reference_drives_the_service(master):
    reference = requests.get(master.url + "/references/auth/v1/api.json", timeout=10).json()
    made = taskcluster.client.createApiClient("Auth", {"reference": reference})
    admin = made({"rootUrl": master.url, "credentials": ADMIN, "maxRetries": 0})
    assert "auth:*" in admin.currentScopes()["scopes"]
    assert admin.role("admins")["roleId"] == "admins"
    assert set(made.funcinfo) <= set(taskcluster.Auth.funcinfo)
