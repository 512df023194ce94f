"""``c['www']['auth']``: UserPasswordAuth, HTPasswdAuth (a real htpasswd file: bcrypt, {SHA},
$apr1$ and crypt entries), RemoteUserAuth through a trusted proxy's header; their users log
in as c['users'] do, with the scopes c['www']['authz'] grants; whoami says where each scope
comes from; checkconfig explains a config mixing c['users'] and www['auth']."""

import base64
import hashlib
import subprocess
import threading

import bcrypt
import pytest
import pytest_twisted
from twisted.internet import defer, task

from buildfarm.master.auth.identity import BASIC, REMOTE_USER, AuthError
from buildfarm.master.auth.service import AuthService
from buildfarm.master.auth.webauth import apr1, verify_htpasswd
from buildfarm.master.config import WWW_NO_EFFECT_KEYS, ConfigErrors, load_config
from buildfarm.master.plugins import util
from fixtures.memoryhttp import MemoryRequest

CFG = """\
from buildfarm.master.plugins import *
c = BuildmasterConfig = {}
c['workers'] = [worker.Worker('bs1', 'pass')]
c['builders'] = [util.BuilderConfig(name=n, workernames=['bs1'],
                 factory=util.BuildFactory([steps.ShellCommand(command=['true'])])) for n in ('b1', 'b2')]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['b1', 'b2'])]
c['protocols'] = {'pb': {'port': 9989}}
"""
AUTHZ = ("util.Authz(allowRules=[util.ForceBuildEndpointMatcher(builder='b1', role='release'),"
         " util.StopBuildEndpointMatcher(role='owner'), util.AnyControlEndpointMatcher(role='admins')],"
         " roleMatchers=[util.RolesFromUsername(roles=['release'], usernames=['alice']),"
         " util.RolesFromOwner(role='owner')])")


def master_cfg(tmp_path, www: str, extra: str = "") -> str:
    path = tmp_path / "master.cfg"
    path.write_text(CFG + extra + f"c['www'] = {www}\n")
    return str(path)


def in_thread(f, *args):
    """Run the slow checks in a plain thread here too, as the reactor's pool would."""
    d = defer.Deferred()
    result = {}

    def run():
        result["value"] = f(*args)

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=30)
    d.callback(result["value"])
    return d


def service_for(cfg) -> AuthService:
    return AuthService(task.Clock(), cfg.users, cfg.www_anonymous_scopes, web_auth=cfg.web_auth,
                       run_slowly=in_thread, iterations=1000)


def basic(name: str, password: str) -> dict:
    return {"authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def request(headers: dict | None = None, peer: str = "127.0.0.1") -> MemoryRequest:
    req = MemoryRequest("GET", "/api/v1/auth/whoami", peer=peer)
    for name, value in (headers or {}).items():
        req.requestHeaders.setRawHeaders(name.encode(), [value.encode()])
    req.parseCookies()
    return req


# -- htpasswd entries -----------------------------------------------------------------------

def test_htpasswd_hashes_of_every_supported_kind_verify():
    bcrypt_2y = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$", 1)
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"pw").digest()).decode()
    openssl_apr1 = subprocess.run(["openssl", "passwd", "-apr1", "-salt", "saltsalt", "pw"],
                                  capture_output=True, text=True, check=True).stdout.strip()
    assert apr1("pw", "saltsalt") == openssl_apr1
    crypt_sha512 = subprocess.run(["openssl", "passwd", "-6", "-salt", "saltsalt", "pw"],
                                  capture_output=True, text=True, check=True).stdout.strip()
    crypt_des = "abzlUXK5ed5rs"  # crypt(3) of "pw" with salt "ab"
    for encoded in (bcrypt_2y, sha, openssl_apr1, crypt_sha512, crypt_des):
        assert verify_htpasswd("pw", encoded), encoded
        assert not verify_htpasswd("wrong", encoded), encoded


@pytest_twisted.ensureDeferred
async def test_htpasswd_users_log_in_with_http_basic_and_get_authz_scopes(tmp_path):
    (tmp_path / "htpasswd").write_text(
        "# users\n"
        f"alice:{bcrypt.hashpw(b'pw1', bcrypt.gensalt(4)).decode().replace('$2b$', '$2y$', 1)}\n"
        f"bob:{{SHA}}{base64.b64encode(hashlib.sha1(b'pw2').digest()).decode()}\n")
    www = f"dict(port=8010, auth=util.HTPasswdAuth('htpasswd'), authz={AUTHZ})"
    cfg = load_config(master_cfg(tmp_path, www))
    auth = service_for(cfg)
    alice = await auth.identify(request(basic("alice", "pw1")))
    assert alice.method == BASIC and alice.may("builds:force:b1") and not alice.may("builds:force:b2")
    bob = await auth.identify(request(basic("bob", "pw2")))
    assert not bob.may("builds:force:b1")
    with pytest.raises(AuthError) as refused:
        await auth.identify(request(basic("alice", "pw2")))
    assert refused.value.status == 401


def test_a_bad_htpasswd_line_is_a_config_error_naming_the_line(tmp_path):
    (tmp_path / "htpasswd").write_text("alice:{SHA}not-base64\n")
    with pytest.raises(ConfigErrors) as caught:
        load_config(master_cfg(tmp_path, "dict(port=8010, auth=util.HTPasswdAuth('htpasswd'))"))
    assert any("htpasswd line 1: a {SHA} hash is base64 of 20 bytes" in str(e) for e in caught.value.errors)


# -- UserPasswordAuth -----------------------------------------------------------------------

@pytest.mark.parametrize("users", ["{'alice': 'pw1', 'bob': 'pw2'}", "[('alice', 'pw1'), (b'bob', b'pw2')]"])
@pytest_twisted.ensureDeferred
async def test_user_password_auth_takes_a_dict_or_a_list_of_pairs(tmp_path, users):
    www = f"dict(port=8010, auth=util.UserPasswordAuth({users}), authz={AUTHZ})"
    cfg = load_config(master_cfg(tmp_path, www))
    auth = service_for(cfg)
    assert (await auth.identify(request(basic("bob", "pw2")))).name == "bob"
    assert (await auth.check_password("alice", "pw1", "127.0.0.1")).name == "alice"


def test_without_authz_www_auth_users_may_do_everything_as_in_buildbot(tmp_path):
    cfg = load_config(master_cfg(tmp_path, "dict(port=8010, auth=util.UserPasswordAuth({'alice': 'pw'}))"))
    alice = next(a for a in cfg.users if a.name == "alice")
    assert {"builds:force:b1", "builds:stop:b2", "builds:cancel:b1", "slaves:shutdown:*"} <= set(alice.scopes)


# -- RemoteUserAuth -------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_remote_user_header_from_a_trusted_proxy_names_the_user(tmp_path):
    cfg = load_config(master_cfg(tmp_path, "dict(port=8010, auth=util.RemoteUserAuth(), "
                                           f"trusted_proxies=['10.0.0.5'], authz={AUTHZ})"))
    auth = service_for(cfg)
    alice = await auth.identify(request({"REMOTE_USER": "alice@EXAMPLE.COM"}, peer="10.0.0.5"))
    assert (alice.method, alice.name) == (REMOTE_USER, "alice") and alice.may("builds:force:b1")
    assert alice.browser_borne


@pytest_twisted.ensureDeferred
async def test_remote_user_header_from_anyone_else_is_refused(tmp_path):
    cfg = load_config(master_cfg(tmp_path, "dict(port=8010, auth=util.RemoteUserAuth(), "
                                           "trusted_proxies=['10.0.0.5'])"))
    auth = service_for(cfg)
    with pytest.raises(AuthError) as refused:
        await auth.identify(request({"REMOTE_USER": "alice@EXAMPLE.COM"}, peer="10.0.0.6"))
    assert refused.value.status == 403 and "trusted_proxies" in refused.value.message
    with pytest.raises(AuthError) as unmatched:
        await auth.identify(request({"REMOTE_USER": "no-realm"}, peer="10.0.0.5"))
    assert "headerRegex" in unmatched.value.message


@pytest_twisted.ensureDeferred
async def test_remote_user_header_regex_groups_become_roles(tmp_path):
    authz = ("util.Authz(allowRules=[util.AnyControlEndpointMatcher(role='admins')],"
             " roleMatchers=[util.RolesFromGroups(groupPrefix='bb-')])")
    cfg = load_config(master_cfg(tmp_path, "dict(port=8010, auth=util.RemoteUserAuth(header='X-Remote-User',"
                                           " headerRegex=r'(?P<username>[^ ;]+);(?P<groups>.*)'), "
                                           f"authz={authz})"))
    auth = service_for(cfg)
    carol = await auth.identify(request({"X-Remote-User": "carol;bb-admins,dev"}))
    assert carol.may("builds:stop:b2") and auth.describe(carol)["roles"] == ["admins"]


# -- owner scopes, whoami -------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_the_owner_of_a_build_may_stop_it_and_only_it(tmp_path):
    cfg = load_config(master_cfg(tmp_path, f"dict(port=8010, auth=util.UserPasswordAuth({{'bob': 'pw'}}), "
                                           f"authz={AUTHZ})"))
    bob = await service_for(cfg).identify(request(basic("bob", "pw")))
    assert bob.may("builds:stop:b1", owner="bob")
    assert not bob.may("builds:stop:b1", owner="alice") and not bob.may("builds:stop:b1")


@pytest_twisted.ensureDeferred
async def test_whoami_says_where_each_scope_comes_from(tmp_path):
    extra = "c['users'] = [util.User('ops', password='pw', scopes=['slaveapi:read'])]\n"
    cfg = load_config(master_cfg(tmp_path, f"dict(port=8010, auth=util.UserPasswordAuth({{'alice': 'pw1'}}), "
                                           f"authz={AUTHZ})", extra))
    auth = service_for(cfg)
    alice = auth.describe(await auth.identify(request(basic("alice", "pw1"))))
    assert (alice["user"], alice["source"], alice["roles"]) == ("alice", "c['www']['auth'] UserPasswordAuth",
                                                              ["release"])
    origins = {s["scope"]: s["origin"] for s in alice["scopes"]}
    assert origins["builds:force:b1"] == (
        "www['authz']: allowRules[0] ForceBuildEndpointMatcher(builder='b1', role='release') for role "
        "'release' from RolesFromUsername(roles=['release'], usernames=['alice'])")
    assert [s["scope"] for s in alice["owner_scopes"]] == ["builds:stop:b1", "builds:stop:b2"]
    ops = auth.describe(await auth.identify(request(basic("ops", "pw"))))
    assert {"scope": "slaveapi:read", "origin": "c['users']"} in ops["scopes"]
    nobody = auth.describe(await auth.identify(request()))
    assert nobody["user"] is None and nobody["scopes"][0]["scope"] == "builds:read"


# -- configuration --------------------------------------------------------------------------

def test_auth_and_authz_have_effect_now():
    assert "auth" not in WWW_NO_EFFECT_KEYS and "authz" not in WWW_NO_EFFECT_KEYS


def test_a_user_in_both_c_users_and_www_auth_is_an_error(tmp_path):
    extra = "c['users'] = [util.User('alice', password='pw', scopes=['builds:*'])]\n"
    with pytest.raises(ConfigErrors) as caught:
        load_config(master_cfg(tmp_path, "dict(port=8010, auth=util.UserPasswordAuth({'alice': 'x'}))",
                               extra))
    both = "user 'alice' is in both c['users'] and c['www']['auth']"
    assert any(both in str(e) for e in caught.value.errors)


def test_checkconfig_explains_users_and_scopes_one_line_each(tmp_path):
    extra = "c['users'] = [util.User('ops', password='pw', scopes=['slaveapi:read'])]\n"
    cfg = load_config(master_cfg(tmp_path, f"dict(port=8010, auth=util.UserPasswordAuth({{'alice': 'pw1', "
                                           f"'bob': 'pw2'}}), authz={AUTHZ})", extra))
    lines = cfg.auth_explanation
    assert "user 'ops' (c['users']): slaveapi:read from c['users']" in lines
    assert any(line.startswith("user 'alice' (c['www']['auth'] UserPasswordAuth): builds:force:b1 from "
                               "www['authz']: allowRules[0]") for line in lines)
    assert not any(line.startswith("user 'bob' (c['www']['auth'] UserPasswordAuth): builds:force:")
                   for line in lines)
    assert "c['users'] keep their own scopes: c['www']['authz'] does not apply to them" in lines
    assert not any(line.startswith("Buildbot would let callers without credentials") for line in lines)
    open_authz = "util.Authz(allowRules=[util.ForceBuildEndpointMatcher(builder='b1', role='release')])"
    cfg = load_config(master_cfg(tmp_path, f"dict(port=8010, authz={open_authz})"))
    line = cfg.auth_explanation[0]
    assert line.startswith("Buildbot would let callers without credentials do what no allow rule refuses: "
                           "builds:stop:b1, builds:cancel:b1, builds:rebuild:b1, builds:force:b2,")
    assert "builds:force:b1" not in line


def test_bad_authz_pieces_are_config_errors(tmp_path):
    bad = "dict(port=8010, authz=util.Authz(allowRules=['force'], roleMatchers=[util.RolesFromUsername(" \
          "roles=['r'], usernames=[None])]), trusted_proxies=['proxy.example.com'])"
    with pytest.raises(ConfigErrors) as caught:
        load_config(master_cfg(tmp_path, bad))
    text = "\n".join(map(str, caught.value.errors))
    assert "not an endpoint matcher" in text and "Usernames cannot be None" in text
    assert "c['www']['trusted_proxies'] must be a list of IP addresses" in text


def test_buildbot_module_paths_reexport_the_same_classes():
    from buildfarm.master.www import auth as www_auth
    from buildfarm.master.www.authz import Authz, endpointmatchers, roles
    assert www_auth.UserPasswordAuth is util.UserPasswordAuth and Authz is util.Authz
    assert endpointmatchers.ForceBuildEndpointMatcher is util.ForceBuildEndpointMatcher
    assert roles.RolesFromOwner is util.RolesFromOwner


def test_checkconfig_prints_the_explanation(tmp_path, capsys):
    from buildfarm.master.scripts import runner
    path = master_cfg(tmp_path, f"dict(port=8010, auth=util.UserPasswordAuth({{'alice': 'pw1'}}), "
                                f"authz={AUTHZ})")
    assert runner.main(["checkconfig", path]) == 0
    out = capsys.readouterr().out
    assert "buildmaster: auth: user 'alice' (c['www']['auth'] UserPasswordAuth): builds:force:b1" in out




def test_an_authz_keeping_reading_to_a_role_keeps_anonymous_callers_from_reading(tmp_path):
    authz = ("util.Authz(allowRules=[util.AnyEndpointMatcher(role='admins', defaultDeny=False),"
             " util.AnyEndpointMatcher(role='users')],"
             " roleMatchers=[util.RolesFromUsername(roles=['users'], usernames=['alice'])])")
    www = f"dict(port=8010, auth=util.UserPasswordAuth({{'alice': 'pw', 'bob': 'pw'}}), authz={authz})"
    cfg = load_config(master_cfg(tmp_path, www))
    assert cfg.www_anonymous_scopes == ()
    alice, bob = (next(a for a in cfg.users if a.name == name) for name in ("alice", "bob"))
    assert alice.has_scope("builds:read") and alice.has_scope("builds:force:b2")
    assert not bob.has_scope("builds:read") and not bob.has_scope("builds:force:b2")
