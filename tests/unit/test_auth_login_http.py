"""Logins over HTTP on a real master in memory (tests/fixtures/memorymaster.py): the web
UI's /login and /logout and HTTP basic on the SlaveAPI: 429 with
Retry-After after too many failures, same-site redirects only, logout ends the session."""

import base64
import re

import pytest
import pytest_twisted

from buildfarm.master.auth.authenticator import RateLimited, Unauthenticated
from buildfarm.master.auth.sessions import COOKIE_NAME
from buildfarm.master.slaveapi.resources import SlaveAPI
from buildfarm.master.www.ui.app import WebUI, _local_path
from fixtures.memoryhttp import MemoryRequest, MemoryResponse, render_request
from fixtures.memorymaster import MASTER_CFG as MEMORY_MASTER_CFG
from fixtures.memorymaster import start_memory_master, with_fast_password_checks

ATTACKER = "10.6.6.6"
OFFICE = "10.0.0.7"


MASTER_CFG = MEMORY_MASTER_CFG.replace(
    "c['users'] = [util.User('admin', password='adm1n', scopes=['*'])]",
    "c['users'] = [util.User('oncall', password='s3cret', scopes=['slaveapi:*']),\n"
    "              util.User('viewer', password='v1ew', scopes=['slaveapi:read'])]")


class Farm:
    """A real master in memory (users oncall and viewer) with its pages and its SlaveAPI."""

    async def start(self, basedir):
        self.master = await start_memory_master(basedir, MASTER_CFG)
        with_fast_password_checks(self.master)
        self.clock = self.master.reactor
        self.auth = self.master.auth
        self.sessions = self.auth.sessions
        self.pages = WebUI(self.master).resource()
        self.slaveapi = SlaveAPI(self.master.slaveapi).resource()
        return self

    async def request(self, resource, method: str, path: str, form: dict | None = None, peer: str = OFFICE,
                      cookie: str | None = None, headers: dict | None = None) -> MemoryResponse:
        request = MemoryRequest(method, path, peer)
        request.args = {k.encode(): [v.encode()] for k, v in (form or {}).items()}
        request.gotLength(0)
        if cookie:
            request.received_cookies[COOKIE_NAME] = cookie.encode()
        for name, value in (headers or {}).items():
            request.requestHeaders.setRawHeaders(name.encode(), [value.encode()])
        return await render_request(resource, request)

    async def login(self, user: str, password: str, peer: str = OFFICE, **form) -> MemoryResponse:
        return await self.request(self.pages, "POST", "/login",
                                  {"username": user, "password": password, **form}, peer)

    async def basic(self, user: str, password: str, peer: str = OFFICE) -> MemoryResponse:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return await self.request(self.slaveapi, "GET", "/results", peer=peer,
                                  headers={"Authorization": f"Basic {token}"})


@pytest_twisted.async_yield_fixture
async def farm(tmp_path):
    started = await Farm().start(tmp_path)
    yield started
    await started.master.stopService()


def session_id(response: MemoryResponse) -> str:
    cookie = response.header("set-cookie")
    return cookie.split(";")[0].split("=", 1)[1]


# -- /login limits ------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_login_answers_429_with_retry_after_after_ten_failures(farm):
    for _ in range(10):
        assert (await farm.login("oncall", "guess", ATTACKER)).code == 401
    limited = await farm.login("oncall", "s3cret", ATTACKER)
    assert limited.code == 429 and limited.header("retry-after") == "6"
    assert b"Too many failed logins; try again in 6 s." in limited.body
    assert limited.header("set-cookie") is None
    farm.clock.advance(6)
    assert (await farm.login("oncall", "s3cret", ATTACKER)).code == 303


@pytest_twisted.ensureDeferred
async def test_another_user_from_another_source_is_not_held_back(farm):
    for _ in range(11):
        await farm.login("oncall", "guess", ATTACKER)
    assert (await farm.login("viewer", "v1ew", OFFICE)).code == 303


@pytest_twisted.ensureDeferred
async def test_a_successful_login_resets_the_users_count(farm):
    for _ in range(9):
        assert (await farm.login("oncall", "typo", OFFICE)).code == 401
    assert (await farm.login("oncall", "s3cret", OFFICE)).code == 303
    for _ in range(9):
        assert (await farm.login("oncall", "typo", "10.0.0.8")).code == 401
    assert (await farm.login("oncall", "s3cret", "10.0.0.8")).code == 303


@pytest_twisted.ensureDeferred
async def test_basic_auth_on_the_slaveapi_answers_429_with_retry_after(farm):
    for _ in range(10):
        assert (await farm.basic("oncall", "guess", ATTACKER)).code == 401
    limited = await farm.basic("oncall", "s3cret", ATTACKER)
    assert limited.code == 429 and limited.header("retry-after") == "6"
    assert b'"error": "too many requests"' in limited.body and b"too many failed logins" in limited.body


@pytest_twisted.ensureDeferred
async def test_the_web_login_and_the_slaveapi_share_the_count(farm):
    for _ in range(5):
        await farm.login("oncall", "guess", ATTACKER)
        await farm.basic("oncall", "guess", ATTACKER)
    assert (await farm.basic("oncall", "s3cret", "10.9.9.9")).code == 429


# -- redirects ------------------------------------------------------------------------------

OFF_SITE = ["/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "\t//evil.example",
            "/\\evil.example", "\\\\evil.example", "//evil.example", "https://evil.example/",
            "javascript:alert(1)", "/\x00/evil.example", "/\x7f", "/\u0085/evil.example", "", None, " /x"]


@pytest.mark.parametrize("target", OFF_SITE)
def test_a_redirect_target_that_a_browser_could_read_as_another_site_becomes_the_root(target):
    assert _local_path(target) == "/"


@pytest.mark.parametrize("target", ["/", "/builds/3", "/slaves/bs1?requested=2", "/%09/x", "/a//b", "/é"])
def test_paths_of_this_site_are_kept(target):
    assert _local_path(target) == target


@pytest_twisted.ensureDeferred
async def test_login_never_redirects_off_site_through_a_tab(farm):
    form = await farm.request(farm.pages, "GET", "/login", {"next": "/\t/evil.example"})
    assert re.search(rb'name="next" value="/"', form.body)
    response = await farm.login("oncall", "s3cret", next="/\t/evil.example")
    assert response.code == 303 and response.header("location") == "/"
    response = await farm.login("oncall", "s3cret", next="/builds/3")
    assert response.header("location") == "/builds/3"


# -- logout ---------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_logout_without_the_csrf_token_still_ends_the_server_session(farm):
    sid = session_id(await farm.login("oncall", "s3cret"))
    assert farm.sessions.get(sid) is not None
    response = await farm.request(farm.pages, "POST", "/logout", {}, cookie=sid)
    assert response.code == 303 and "Max-Age=0" in response.header("set-cookie")
    assert farm.sessions.get(sid) is None


@pytest_twisted.ensureDeferred
async def test_a_new_login_replaces_the_session_of_the_cookie_it_brings(farm):
    first = session_id(await farm.login("oncall", "s3cret"))
    response = await farm.request(farm.pages, "POST", "/login", {"username": "viewer", "password": "v1ew"},
                                  cookie=first)
    assert farm.sessions.get(first) is None and farm.sessions.get(session_id(response)).user == "viewer"


@pytest_twisted.ensureDeferred
async def test_a_reconfig_keeps_the_count_of_failed_logins(farm):
    for _ in range(10):
        with pytest.raises(Unauthenticated):
            await farm.master.auth.check_password("oncall", "guess", ATTACKER)
    await farm.master.reconfig()
    with pytest.raises(RateLimited):
        await farm.master.auth.check_password("oncall", "s3cret", ATTACKER)
