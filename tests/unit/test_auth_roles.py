"""Roles: c['roles'] in master.cfg, the database's roles (SQLite and PostgreSQL) kept by the
auth service's ``RoleStore``, and every scope check expanding a caller's scopes through them."""

import base64

import pytest
import pytest_twisted
from twisted.internet import task
from zope.interface.verify import verifyObject

from buildfarm.master.auth.identity import AuthError
from buildfarm.master.auth.roles import (
    DB_SOURCE,
    RELOAD_INTERVAL_S,
    ROLES_SOURCE,
    ReadOnlyRole,
    RoleError,
    RoleExists,
    RoleStore,
    UnknownRole,
    validate_roles,
)
from buildfarm.master.auth.service import AuthService
from buildfarm.master.auth.users import User, validate_users
from buildfarm.master.config import load_config
from fixtures.mastercfg import ISSUE_EXAMPLE
from fixtures.mastercfg import config_errors as errors_of
from fixtures.mastercfg import write_master_cfg as write
from fixtures.memoryhttp import MemoryRequest
from fixtures.polling import wait_for

CONFIG_ROLES = [{"roleId": "project:ci:*", "scopes": ["secrets:get:ci/<..>"], "description": "CI"},
                {"roleId": "oncall", "scopes": ["slaveapi:*"]}]


# -- c['roles'] --------------------------------------------------------------------------------


def test_config_roles_are_read():
    roles, problems = validate_roles(CONFIG_ROLES)
    assert problems == []
    assert [(r.roleId, r.scopes, r.description, r.source) for r in roles] == [
        ("project:ci:*", ("secrets:get:ci/<..>",), "CI", ROLES_SOURCE),
        ("oncall", ("slaveapi:*",), "", ROLES_SOURCE)]


@pytest.mark.parametrize(("items", "expected"), [
    ("oncall", "must be a list"),
    (["oncall"], "not a dict"),
    ([{"roleId": "r", "scopes": ["a"], "scope": []}], "unknown keys ['scope']"),
    ([{"roleId": "r", "scopes": ["a**"]}], "ambiguous"),
    ([{"roleId": "r", "scopes": ["x<..>"]}], "does not end in '*'"),
    ([{"roleId": "r", "scopes": []}, {"roleId": "r", "scopes": []}], "duplicate roleId 'r'"),
    ([{"roleId": "a*", "scopes": ["assume:a<..>x"]}], "assuming itself"),
    ([{"roleId": "r", "scopes": [], "description": 5}], "description"),
])
def test_bad_config_roles_are_reported(items, expected):
    _roles, problems = validate_roles(items)
    assert any(expected in p for p in problems), problems


def test_master_cfg_roles_reach_the_config_and_errors_name_the_key(tmp_path):
    text = ISSUE_EXAMPLE + "\nc['roles'] = [{'roleId': 'oncall', 'scopes': ['slaveapi:*']}]\n"
    assert [r.roleId for r in load_config(write(tmp_path, text)).roles] == ["oncall"]
    bad = ISSUE_EXAMPLE + "\nc['roles'] = [{'roleId': 'oncall', 'scopes': 'slaveapi:*'}]\n"
    assert any("c['roles']" in e and "scopes must be a list" in e for e in errors_of(tmp_path, bad))


# -- the store -----------------------------------------------------------------------------------


def store(db=None, configured=CONFIG_ROLES) -> RoleStore:
    roles, problems = validate_roles(configured)
    assert problems == []
    return RoleStore(task.Clock(), db, roles)


def test_the_store_is_the_scope_expander():
    try:
        from buildfarm.master.auth.interfaces import IScopeExpander
    except ImportError:
        pytest.skip("i20-hawk's IScopeExpander is not merged yet")
    verifyObject(IScopeExpander, store())


@pytest_twisted.ensureDeferred
async def test_config_roles_expand_parameterized():
    assert await store().expand(["assume:project:ci:linux"]) == [
        "assume:project:ci:linux", "secrets:get:ci/linux"]


@pytest_twisted.ensureDeferred
async def test_created_roles_are_stored_and_read_again_at_start(db):
    roles = store(db)
    roles.clock.advance(1000)
    created = await roles.create("team:infra", "the infra team", ["assume:oncall", "builds:*"])
    assert (created.roleId, created.created, created.source) == ("team:infra", 1000, DB_SOURCE)
    again = store(db)
    await again.load()
    assert again.get("team:infra") == created
    assert again.expand_now(["assume:team:infra"]) == ["assume:oncall", "assume:team:infra", "builds:*",
                                                       "slaveapi:*"]


@pytest_twisted.ensureDeferred
async def test_update_and_delete_change_the_expansion_at_once(db):
    roles = store(db)
    await roles.create("team:infra", "", ["builds:read"])
    roles.clock.advance(5)
    updated = await roles.update("team:infra", "now more", ["builds:*"])
    assert (updated.created, updated.lastModified, updated.description) == (0, 5, "now more")
    assert "builds:*" in roles.expand_now(["assume:team:infra"])
    await roles.delete("team:infra")
    await roles.delete("team:infra")  # deleting what is gone is not an error (Taskcluster's rule)
    assert roles.expand_now(["assume:team:infra"]) == ["assume:team:infra"]
    assert await db.roles.get_all() == []


@pytest_twisted.ensureDeferred
async def test_creating_the_same_role_twice_answers_it_and_another_is_a_conflict(db):
    roles = store(db)
    first = await roles.create("r", "d", ["a"])
    assert await roles.create("r", "d", ["a"]) == first
    with pytest.raises(RoleExists):
        await roles.create("r", "d", ["b"])


@pytest_twisted.ensureDeferred
async def test_config_roles_are_read_only(db):
    roles = store(db)
    with pytest.raises(ReadOnlyRole):
        await roles.create("oncall", "", ["other"])
    with pytest.raises(ReadOnlyRole):
        await roles.update("oncall", "", ["other"])
    with pytest.raises(ReadOnlyRole):
        await roles.delete("oncall")
    with pytest.raises(UnknownRole):
        await roles.update("nobody", "", [])


@pytest_twisted.ensureDeferred
async def test_a_role_that_makes_expansion_endless_is_refused_and_changes_nothing(db):
    roles = store(db)
    await roles.create("b*", "", ["B<..>"])
    with pytest.raises(RoleError, match="assuming itself"):
        await roles.create("a*", "", ["assume:b<..>", "assume:a<..>y"])
    with pytest.raises(RoleError, match="assuming itself"):
        await roles.update("b*", "", ["assume:b<..>z"])
    assert roles.get("a*") is None and roles.get("b*").scopes == ("B<..>",)
    assert [r["roleId"] for r in await db.roles.get_all()] == ["b*"]


@pytest_twisted.ensureDeferred
async def test_another_masters_role_changes_arrive_within_the_reload_interval(db):
    here, there = store(db), store(db)
    await there.start()
    try:
        await here.create("team:new", "", ["n"])
        assert there.get("team:new") is None
        there.clock.advance(RELOAD_INTERVAL_S)  # the reload reads the database in its thread
        await wait_for(lambda: there.get("team:new") is not None, "the other master's new role")
        assert there.expand_now(["assume:team:new"]) == ["assume:team:new", "n"]
        await here.delete("team:new")
        there.clock.advance(RELOAD_INTERVAL_S)
        await wait_for(lambda: there.get("team:new") is None, "the other master's deletion")
    finally:
        there.stop()


@pytest_twisted.ensureDeferred
async def test_a_reconfig_replaces_the_config_roles_and_keeps_the_stored_ones(db):
    roles = store(db)
    await roles.create("mine", "", ["m"])
    new, _ = validate_roles([{"roleId": "oncall", "scopes": ["slaveapi:read"]}])
    roles.configure(new)
    assert [(r.roleId, r.scopes) for r in roles.all()] == [("mine", ("m",)), ("oncall", ("slaveapi:read",))]


# -- scope checks through the roles --------------------------------------------------------------


def auth_service(roles=CONFIG_ROLES, anonymous=("builds:read",)) -> AuthService:
    accounts, problems = validate_users([User("ann", password="pw", scopes=["assume:oncall"]),
                                         User("bob", password="pw", scopes=["builds:read"])], None)
    assert problems == []
    configured, problems = validate_roles(roles)
    assert problems == []
    return AuthService(task.Clock(), accounts, anonymous, roles=configured, iterations=1000)


def request_as(user: str | None):
    req = MemoryRequest("GET", "/x")
    if user is not None:
        req.requestHeaders.setRawHeaders(b"authorization",
                                         [b"Basic " + base64.b64encode(f"{user}:pw".encode())])
    req.parseCookies()
    return req


@pytest_twisted.ensureDeferred
async def test_a_scope_granted_through_a_role_passes_the_check():
    auth = auth_service()
    identity = await auth.authorize(request_as("ann"), "slaveapi:reboot:bs1", False)
    assert identity.name == "ann" and "slaveapi:*" in identity.scopes


@pytest_twisted.ensureDeferred
async def test_the_anonymous_role_grants_to_every_caller():
    auth = auth_service(CONFIG_ROLES + [{"roleId": "anonymous", "scopes": ["metrics:read"]}])
    assert (await auth.authorize(request_as(None), "metrics:read", False)).anonymous
    assert (await auth.authorize(request_as("bob"), "metrics:read", False)).name == "bob"


@pytest_twisted.ensureDeferred
async def test_a_refusal_names_the_required_expression_and_the_unsatisfied_part():
    auth = auth_service()
    required = {"AllOf": ["builds:read", {"AnyOf": ["auth:create-role:x", "auth:*"]}]}
    with pytest.raises(AuthError) as caught:
        await auth.authorize(request_as("bob"), required, False)
    error = caught.value
    assert error.status == 403
    assert error.scope_fields() == {"required": required,
                                    "unsatisfied": {"AnyOf": ["auth:create-role:x", "auth:*"]}}
    assert "(lacking (auth:create-role:x or auth:*))" in error.message


@pytest_twisted.ensureDeferred
async def test_a_single_missing_scope_keeps_the_old_message_and_adds_the_fields():
    auth = auth_service()
    with pytest.raises(AuthError) as caught:
        await auth.authorize(request_as("bob"), "builds:force:b", True)
    assert caught.value.message == "user 'bob' lacks the scope 'builds:force:b'"
    assert caught.value.scope_fields() == {"scope": "builds:force:b", "required": "builds:force:b",
                                           "unsatisfied": "builds:force:b"}
    with pytest.raises(AuthError) as anonymous:
        await auth.authorize(request_as(None), "builds:force:b", True)
    assert anonymous.value.status == 401 and anonymous.value.unsatisfied == "builds:force:b"


@pytest_twisted.ensureDeferred
async def test_the_service_reads_the_database_roles_at_start(db):
    await db.roles.add("stored", "", ["builds:force:*"], 0.0)
    accounts, _ = validate_users([User("cat", password="pw", scopes=["assume:stored"])], None)
    auth = AuthService(task.Clock(), accounts, (), db=db)
    await auth.startService()
    try:
        assert (await auth.authorize(request_as("cat"), "builds:force:b", False)).name == "cat"
    finally:
        auth.stopService()


def test_only_a_public_route_may_skip_identifying_its_caller():
    from klein import Klein

    from buildfarm.master.http.routes import PUBLIC, RouteTable

    table = RouteTable(Klein(), "t")
    with pytest.raises(ValueError, match="identify=False is for PUBLIC routes"):
        table.route("/x", "GET", scope="x:read", identify=False)
    table.route("/y", "POST", scope=PUBLIC, identify=False)(lambda self, request: b"")
    assert table.rule_for("POST /y").identify is False
