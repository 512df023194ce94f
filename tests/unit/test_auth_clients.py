"""Clients: c['clients'] as checkconfig reads it, the database's clients (both backends) with
their access tokens encrypted, and the store that serves both (master/auth/clients.py)."""

import os
import stat
import time

import pytest
import pytest_twisted
import sqlalchemy as sa
from twisted.internet import reactor, task
from twisted.internet.task import deferLater
from zope.interface.verify import verifyObject

from buildfarm.master.auth.clients import (
    NEVER,
    ClientStore,
    NoRoles,
    TokenCipher,
    load_or_create_key,
    validate_clients,
)
from buildfarm.master.auth.interfaces import (
    FROM_CONFIG,
    FROM_USERS,
    ClientExists,
    IClientStore,
    InvalidClient,
    IScopeExpander,
    ReadOnlyClient,
    UnknownClient,
    iso,
)
from buildfarm.master.auth.service import AuthService
from buildfarm.master.auth.users import User, validate_users
from buildfarm.master.config import load_config
from buildfarm.master.db.model import clients as clients_table
from fixtures.mastercfg import ISSUE_EXAMPLE, config_errors, write_master_cfg

KEY = b"k" * 32
NOW = 1_800_000_000.0
LATER = NOW + 86400


def store(db=None, configured=(), accounts=(), key=KEY) -> ClientStore:
    clock = task.Clock()
    clock.advance(NOW)
    return ClientStore(clock, db, accounts=list(accounts), configured=list(configured), master_key=key)


# -- c['clients'] ---------------------------------------------------------------------------

def test_config_clients_are_read_with_their_secret_tokens(tmp_path, monkeypatch):
    (tmp_path / "deploy.token").write_text("file-token\n")
    monkeypatch.setenv("CI_TOKEN", "env-token")
    found, problems = validate_clients([
        {"clientId": "ci/deploy", "accessToken": {"file": "deploy.token"}, "scopes": ["queue:*"],
         "expires": "2030-01-01T00:00:00Z", "description": "deploys"},
        {"clientId": "ci/env", "accessToken": {"env": "CI_TOKEN"}},
    ], str(tmp_path))
    assert problems == []
    (deploy, deploy_token), (env, env_token) = found
    assert (deploy.clientId, deploy.scopes, deploy.description, deploy.source) == (
        "ci/deploy", ("queue:*",), "deploys", FROM_CONFIG)
    assert iso(deploy.expires) == "2030-01-01T00:00:00.000Z"
    assert deploy_token.reveal() == "file-token" and env_token.reveal() == "env-token"
    assert env.expires == NEVER and env.scopes == ()
    assert "file-token" not in repr(found)


def test_each_problem_of_config_clients_is_one_line():
    _, problems = validate_clients([
        {"clientId": "bad id", "accessToken": "t"},
        {"clientId": "a", "accessToken": "t", "colour": "red"},
        {"clientId": "b"},
        {"clientId": "c", "accessToken": "t", "expires": "next week"},
        {"clientId": "d", "accessToken": "t", "scopes": "queue:*"},
        {"clientId": "e", "accessToken": {"env": "NOT_SET_ANYWHERE_42"}},
        {"clientId": "f", "accessToken": "t"},
        {"clientId": "f", "accessToken": "u"},
        "not a dict",
    ], None)
    assert len(problems) == 8 and all("\n" not in p for p in problems)
    for expected in ("clientId must be", "unknown key 'colour'", "'b' has no accessToken", "expires must be",
                     "scopes must be a list", "NOT_SET_ANYWHERE_42 is not set", "duplicate clientId 'f'",
                     "must be a dict"):
        assert any(expected in p for p in problems), (expected, problems)


def test_checkconfig_reports_bad_clients_with_their_line(tmp_path):
    errors = config_errors(tmp_path, ISSUE_EXAMPLE + "c['clients'] = [{'clientId': 'x'}]\n")
    assert any("master.cfg" in e and "client 'x' has no accessToken" in e for e in errors), errors


def test_a_master_cfg_with_clients_and_a_clients_key_loads(tmp_path):
    cfg = load_config(write_master_cfg(tmp_path, ISSUE_EXAMPLE + (
        "c['clients'] = [{'clientId': 'ci', 'accessToken': 'tok', 'scopes': ['builds:read']}]\n"
        "c['clients_key'] = 'a long random key'\n")))
    assert [c.clientId for c, _ in cfg.clients] == ["ci"]
    assert cfg.clients_key.reveal() == "a long random key"


# -- the store: master.cfg's clients and users -----------------------------------------------

def test_the_store_provides_its_interface_and_no_roles_expands_nothing():
    assert verifyObject(IClientStore, store())
    assert verifyObject(IScopeExpander, NoRoles())
    assert NoRoles().expand(["b", "a", "b"]).result == ["a", "b"]


@pytest_twisted.ensureDeferred
async def test_users_with_a_password_are_read_only_clients_whose_token_is_the_password():
    accounts, problems = validate_users([User("ann", password="pw", scopes=["builds:*"]),
                                         User("tok", tokens=["t"])], None)
    assert problems == []
    clients = store(accounts=accounts)
    client, token = await clients.credentials("ann")
    assert (client.source, client.scopes, token) == (FROM_USERS, ("builds:*",), "pw")
    assert await clients.get("tok") is None  # a bearer-token-only user cannot sign Hawk requests
    with pytest.raises(ReadOnlyClient):
        await clients.disable("ann")


@pytest_twisted.ensureDeferred
async def test_a_config_client_wins_over_a_user_of_the_same_name():
    accounts, _ = validate_users([User("ci", password="pw")], None)
    configured, _ = validate_clients([{"clientId": "ci", "accessToken": "tok"}], None)
    client, token = await store(configured=configured, accounts=accounts).credentials("ci")
    assert (client.source, token) == (FROM_CONFIG, "tok")


# -- the store: database clients ---------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_create_get_update_and_delete_a_database_client(db):
    clients = store(db)
    client, token = await clients.create("ci/one", LATER, "first", ["queue:create-task:*"], True)
    assert len(token) == 44
    assert (client.clientId, client.description, client.scopes, client.deleteOnExpiration) == (
        "ci/one", "first", ("queue:create-task:*",), True)
    assert client.created == client.lastModified == client.lastRotated == NOW and not client.disabled
    assert await clients.get("ci/one") == client
    assert (await clients.credentials("ci/one"))[1] == token
    clients.clock.advance(10)
    updated = await clients.update("ci/one", LATER + 1, "second", ["a", "b"], False)
    assert (updated.description, updated.scopes, updated.expires, updated.lastModified) == (
        "second", ("a", "b"), LATER + 1, NOW + 10)
    await clients.delete("ci/one")
    assert await clients.get("ci/one") is None
    await clients.delete("ci/one")  # deleting a missing client is not an error


@pytest_twisted.ensureDeferred
async def test_an_access_token_is_stored_encrypted_and_only_this_key_reads_it(db):
    clients = store(db)
    _, token = await clients.create("ci/enc", LATER)
    row = await db.run(lambda conn: conn.execute(sa.select(clients_table)).one())
    assert token not in row.access_token
    assert TokenCipher(KEY).decrypt("ci/enc", row.access_token) == token
    assert TokenCipher(b"another key").decrypt("ci/enc", row.access_token) is None
    assert TokenCipher(KEY).decrypt("ci/other", row.access_token) is None  # bound to its client
    assert await store(db, key=b"another key").credentials("ci/enc") is None


@pytest_twisted.ensureDeferred
async def test_reset_disable_and_enable_change_what_the_client_proves(db):
    clients = store(db)
    _, old = await clients.create("ci/r", LATER)
    clients.clock.advance(5)
    client, new = await clients.reset_access_token("ci/r")
    assert new != old and client.lastRotated == NOW + 5
    assert (await clients.credentials("ci/r"))[1] == new
    assert (await clients.disable("ci/r")).disabled
    assert not (await clients.enable("ci/r")).disabled


@pytest_twisted.ensureDeferred
async def test_refusals_name_their_reason(db):
    configured, _ = validate_clients([{"clientId": "static", "accessToken": "tok"}], None)
    clients = store(db, configured=configured)
    await clients.create("ci/x", LATER)
    with pytest.raises(ClientExists):
        await clients.create("ci/x", LATER)
    with pytest.raises(ReadOnlyClient):
        await clients.create("static", LATER)
    with pytest.raises(InvalidClient):
        await clients.create("no spaces", LATER)
    with pytest.raises(InvalidClient):
        await clients.create("ci/y", "tomorrow")
    with pytest.raises(UnknownClient):
        await clients.disable("ci/missing")
    with pytest.raises(UnknownClient):
        await clients.reset_access_token("ci/missing")


@pytest_twisted.ensureDeferred
async def test_list_pages_database_and_config_clients_by_id_with_a_prefix(db):
    configured, _ = validate_clients([{"clientId": "ci/b", "accessToken": "t"}], None)
    clients = store(db, configured=configured)
    for name in ("ci/a", "ci/c", "ci/d", "other"):
        await clients.create(name, LATER)
    page, more = await clients.list("ci/", None, 2)
    assert [c.clientId for c in page] == ["ci/a", "ci/b"] and more is not None
    page, more = await clients.list("ci/", more, 2)
    assert [c.clientId for c in page] == ["ci/c", "ci/d"] and more is None
    everything, _ = await clients.list()
    assert [c.clientId for c in everything] == ["ci/a", "ci/b", "ci/c", "ci/d", "other"]
    with pytest.raises(InvalidClient):
        await clients.list(None, "!!not a token!!", 10)


@pytest_twisted.ensureDeferred
async def test_last_date_used_is_written_at_most_hourly(db):
    clients = store(db)
    client, _ = await clients.create("ci/u", LATER)
    clients.clock.advance(60)
    await clients.used(client)
    assert (await clients.get("ci/u")).lastDateUsed == NOW  # within the hour: not written
    clients.clock.advance(3600)
    await clients.used(client)
    assert (await clients.get("ci/u")).lastDateUsed == NOW + 3660


def test_client_json_has_taskclusters_shape():
    configured, _ = validate_clients([{"clientId": "c", "accessToken": "t", "expires": 0}], None)
    body = configured[0][0].to_json(["x"])
    assert body["expires"] == "1970-01-01T00:00:00.000Z" and body["expandedScopes"] == ["x"]
    assert set(body) == {"clientId", "description", "expires", "disabled", "scopes", "created",
                         "lastModified", "lastDateUsed", "lastRotated", "deleteOnExpiration",
                         "expandedScopes"}


def test_the_clients_key_file_is_made_once_readable_by_its_owner_only(tmp_path):
    path = str(tmp_path / "clients.key")
    key = load_or_create_key(path)
    assert len(key) >= 32 and load_or_create_key(path) == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest_twisted.ensureDeferred
async def test_delete_expired_deletes_only_expired_clients_that_asked_for_it(db):
    clients = store(db)
    await clients.create("ci/short", NOW + 10, delete_on_expiration=True)
    await clients.create("ci/kept", NOW + 10, delete_on_expiration=False)
    await clients.create("ci/later", NOW + 100, delete_on_expiration=True)
    assert await clients.delete_expired() == []
    clients.clock.advance(10)
    assert await clients.delete_expired() == ["ci/short"]
    assert [c.clientId for c in (await clients.list())[0]] == ["ci/kept", "ci/later"]


@pytest_twisted.ensureDeferred
async def test_the_auth_service_sweeps_expired_clients_at_start_and_hourly(db):
    clock = task.Clock()
    clock.advance(NOW)
    auth = AuthService(clock, db=db, clients_key=KEY)
    await auth.clients.create("ci/gone", NOW - 1, delete_on_expiration=True)
    await auth.clients.create("ci/short", NOW + 10, delete_on_expiration=True)
    auth.startService()
    try:
        await _until(lambda ids: ids == ["ci/short"], auth)
        clock.advance(3600)
        await _until(lambda ids: ids == [], auth)
    finally:
        auth.stopService()


async def _until(predicate, auth, deadline_s: float = 5.0) -> None:
    """Poll the clients (the sweep runs on the database's threads) until ``predicate`` holds."""
    deadline = time.monotonic() + deadline_s
    while True:
        ids = [c.clientId for c in (await auth.clients.list())[0]]
        if predicate(ids):
            return
        assert time.monotonic() < deadline, ids
        await deferLater(reactor, 0.01)
