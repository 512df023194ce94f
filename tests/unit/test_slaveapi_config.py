"""c['users'] validated into accounts (the master's auth service holds them) and c['slaveapi']
into SlaveAPISettings; secrets stay hidden."""

import pytest
import pytest_twisted
from twisted.internet import task

from buildfarm.master.auth.authenticator import Authenticator, Unauthenticated
from buildfarm.master.auth.passwords import hash_password, verify_password_hash
from buildfarm.master.auth.users import User, has_scope, validate_users
from buildfarm.master.slaveapi.settings import validate_slaveapi_config


def test_the_minimal_form_of_the_issue_works_as_written():
    raw = {"users": [User("oncall", password="s3cret", scopes=["slaveapi:*"]),
                     User("viewer", password="v1ew", scopes=["slaveapi:read"])],
           "slaveapi": {"port": 8081}}
    settings, problems = validate_slaveapi_config(raw)
    accounts, user_problems = validate_users(raw["users"], None)
    assert problems == [] and user_problems == []
    assert settings.port == "tcp:8081" and settings.max_concurrency == 4
    assert [u.name for u in accounts] == ["oncall", "viewer"]
    assert not hasattr(settings, "users")  # users are the master's, not the SlaveAPI's


def test_no_slaveapi_section_means_no_port():
    settings, problems = validate_slaveapi_config({})
    assert (settings.port, problems) == (None, [])


def test_passwords_and_tokens_come_from_files_and_the_environment(tmp_path, monkeypatch):
    (tmp_path / "pw").write_text("from-file\n")
    monkeypatch.setenv("VIEWER_TOKEN", "tok-env")
    raw = {"users": [User("a", password={"file": "pw"}, tokens=[{"env": "VIEWER_TOKEN"}], scopes=[])]}
    accounts, problems = validate_users(raw["users"], str(tmp_path))
    assert problems == []
    account = accounts[0]
    assert account.password.reveal() == "from-file" and account.tokens[0].reveal() == "tok-env"
    assert "from-file" not in repr(account) and "tok-env" not in repr(account)


@pytest.mark.parametrize("user, message", [
    (User("a", password={"file": "missing"}), "user 'a': password: cannot read missing"),
    (User("a", password={"env": "NOT_SET_ANYWHERE"}), "NOT_SET_ANYWHERE is not set"),
    (User("a", password_hash="md5$abc"), "password_hash must look like pbkdf2_sha256$"),
    (User("a"), "it could never log in"),
    (User("a", password="x", password_hash=hash_password("x", 1000)), "not both"),
    (User("a", password="x", scopes="slaveapi:*"), "scopes must be a list"),
    (User("a", password="x", colour="red"), "unknown argument 'colour'"),
])
def test_bad_users_are_reported(tmp_path, user, message):
    _, problems = validate_users([user], str(tmp_path))
    assert any(message in text for text in problems), problems


@pytest.mark.parametrize("section, message", [
    ({"port": "eighty"}, "bad port 'eighty'"),
    ({"port": 70000}, "between 1 and 65535"),
    ({"max_concurrency": 0}, "max_concurrency'] must be an integer >= 1"),
    ({"shutdown_timeout": -1}, "shutdown_timeout'] must be a positive number"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"slaves": {"bs1": {"ssh": {"password": {"env": "NOPE_UNSET"}}}}}, "NOPE_UNSET is not set"),
    ({"slaves": {"bs1": {"serial": {}}}}, "unknown key 'serial'"),
    ({"slaves": {"bs1": {"buildbotslave": "foopy9"}}}, "buildbotslave 'foopy9' is not a slave of this"),
    ({"slaves": {"bs1": {"purpose": 3}}}, "purpose must be a non-empty string"),
])
def test_bad_slaveapi_settings_are_reported(section, message):
    _, problems = validate_slaveapi_config({"slaveapi": section})
    assert any(key == "slaveapi" and message in text for key, text in problems), problems


def test_inventory_secrets_are_hidden_and_plain_settings_shown(monkeypatch):
    monkeypatch.setenv("IPMI_PW", "hunter2")
    section = {"slaves": {"bs1": {"fqdn": "bs1.example.com",
                                  "bmc": {"fqdn": "bs1-mgmt", "username": "admin",
                                          "password": {"env": "IPMI_PW"}},
                                  "pdu": {"fqdn": "pdu3", "outlet": "AA12", "community": "public"}}}}
    settings, problems = validate_slaveapi_config({"slaveapi": section})
    assert problems == []
    location = settings.slaves["bs1"]
    assert location.channels["bmc"]["password"].reveal() == "hunter2"
    assert location.public_channels() == {
        "bmc": {"fqdn": "bs1-mgmt", "username": "admin", "password": "(secret)"},
        "pdu": {"fqdn": "pdu3", "outlet": "AA12", "community": "(secret)"}}
    assert "hunter2" not in repr(settings)


def test_inventory_channel_settings_are_checked_when_the_config_loads():
    section = {"slaves": {"bs1": {"ssh": {"username": "u"}, "bmc": {"fqdn": "bmc1"},
                                  "pdu": {"fqdn": "pdu1", "port": "AA12"}}}}
    _, problems = validate_slaveapi_config({"slaveapi": section})
    texts = [text for _, text in problems]
    assert "c['slaveapi']['slaves']['bs1']['bmc']: username is required" in texts
    assert any("['pdu']: port must be a UDP port number, not 'AA12'" in t for t in texts), texts
    assert any("['ssh']: no host to ssh to" in t for t in texts), texts


@pytest.mark.parametrize("granted, needed, allowed", [
    (["slaveapi:*"], "slaveapi:reboot:bs1", True),
    (["slaveapi:reboot:*"], "slaveapi:reboot:bs1", True),
    (["slaveapi:reboot:*"], "slaveapi:disable:bs1", False),
    (["slaveapi:read"], "slaveapi:read", True),
    (["slaveapi:read"], "slaveapi:reboot:bs1", False),
    (["slaveapi:reboot:bs1"], "slaveapi:reboot:bs10", False),
])
def test_scopes_match_exactly_or_by_trailing_wildcard(granted, needed, allowed):
    assert has_scope(granted, needed) is allowed


def test_a_password_hash_verifies_only_its_password():
    encoded = hash_password("correct horse", iterations=1000)
    assert encoded.startswith("pbkdf2_sha256$1000$")
    assert verify_password_hash("correct horse", encoded)
    assert not verify_password_hash("wrong", encoded)


@pytest_twisted.ensureDeferred
async def test_malformed_authorization_headers_are_refused():
    accounts, _ = validate_users([User("a", password="p")], None)
    authenticator = Authenticator(accounts, task.Clock())
    for header in (None, b"", b"Digest abc", b"Basic !!!", b"Basic " + b"bm9jb2xvbg=="):
        with pytest.raises(Unauthenticated):
            await authenticator.authenticate(header)


def test_purpose_pool_colo_and_buildbotslave_are_read_from_the_inventory():
    settings, problems = validate_slaveapi_config({"slaveapi": {"slaves": {
        "bs1": {"purpose": "build", "pool": "build-pool", "colo": "scl3", "buildbotslave": "foopy1"},
        "foopy1": {}}}})
    assert problems == []
    bs1 = settings.slaves["bs1"]
    assert (bs1.purpose, bs1.pool, bs1.colo, bs1.buildbotslave) == ("build", "build-pool", "scl3", "foopy1")
