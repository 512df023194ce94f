"""The auth service in memory: credentials from headers and cookies, rate-limited logins as
429 with Retry-After, the origin and CSRF rules of browser-borne writes."""

import base64

import pytest
import pytest_twisted
from twisted.internet import task

from buildfarm.master.auth.authenticator import Unauthenticated
from buildfarm.master.auth.identity import BASIC, BEARER, COOKIE, NONE, AuthError
from buildfarm.master.auth.service import AuthService, csrf_token_of, same_origin
from buildfarm.master.auth.users import User, validate_users
from fixtures.memoryhttp import MemoryRequest


def service(anonymous=("builds:read",)) -> AuthService:
    users = [User("ann", password="pw", tokens=["tok"], scopes=["builds:*"])]
    accounts, problems = validate_users(users, None)
    assert problems == []
    return AuthService(task.Clock(), accounts, anonymous)


def request(headers: dict | None = None, method: str = "POST", uri: str = "/x", body: bytes = b""):
    req = MemoryRequest(method, uri.partition("?")[0])
    req.uri = uri.encode()
    for name, value in (headers or {}).items():
        req.requestHeaders.setRawHeaders(name.encode(), [value.encode()])
    req.parseCookies()
    req.gotLength(len(body))
    req.content.write(body)
    req.content.seek(0)
    return req


@pytest_twisted.ensureDeferred
async def test_basic_bearer_cookie_and_nothing_identify_as_they_should():
    auth = service()
    basic = "Basic " + base64.b64encode(b"ann:pw").decode()
    assert (await auth.identify(request({"authorization": basic}))).method == BASIC
    assert (await auth.identify(request({"authorization": "Bearer tok"}))).method == BEARER
    session = auth.sessions.create("ann")
    cookie = await auth.identify(request({"cookie": f"buildfarm_session={session.sid}"}))
    assert (cookie.method, cookie.name, cookie.csrf_token) == (COOKIE, "ann", session.csrf_token)
    nobody = await auth.identify(request())
    assert nobody.method == NONE and nobody.may("builds:read") and not nobody.may("builds:force:x")


@pytest_twisted.ensureDeferred
async def test_a_rate_limited_login_is_429_with_retry_after():
    auth = service()

    class Limited(Unauthenticated):
        retry_after = 2.5

    async def refuse(header, peer):
        raise Limited("too many failed logins")

    auth._authenticate = refuse
    with pytest.raises(AuthError) as caught:
        await auth.identify(request({"authorization": "Bearer x"}))
    assert caught.value.status == 429 and caught.value.retry_after_header() == b"3"


@pytest_twisted.ensureDeferred
async def test_a_removed_user_loses_its_sessions_at_reconfig():
    auth = service()
    session = auth.sessions.create("ann")
    no_users = type("Config", (), {"users": [], "www_anonymous_scopes": (), "change_secret": None})
    auth.reconfigService(no_users())
    assert auth.sessions.get(session.sid) is None
    assert (await auth.identify(request({"cookie": f"buildfarm_session={session.sid}"}))).anonymous


def test_the_csrf_token_counts_from_the_form_body_or_header_never_the_query():
    form = {"content-type": "application/x-www-form-urlencoded"}
    assert csrf_token_of(request(form, body=b"csrf_token=abc")) == "abc"
    assert csrf_token_of(request({"x-csrf-token": "hdr"})) == "hdr"
    query_only = request(form, uri="/x?csrf_token=abc")
    query_only.args = {b"csrf_token": [b"abc"]}
    assert csrf_token_of(query_only) is None
    multipart = request({"content-type": "multipart/form-data; boundary=b"}, uri="/x?csrf_token=abc")
    multipart.args = {b"csrf_token": [b"abc"]}
    assert csrf_token_of(multipart) is None


def test_origin_then_referer_decide_same_origin():
    assert same_origin(request({"origin": "http://localhost:8010"})) is True
    assert same_origin(request({"origin": "http://evil.example"})) is False
    assert same_origin(request({"origin": "null"})) is False
    assert same_origin(request({"referer": "http://localhost:8010/builders/x"})) is True
    assert same_origin(request({"referer": "http://localhost:8010.evil.example/"})) is False
    assert same_origin(request()) is None


@pytest_twisted.ensureDeferred
async def test_a_user_holds_its_scopes_and_what_anyone_may_do():
    auth = service(anonymous=("slaves:read",))
    ann = await auth.identify(request({"authorization": "Bearer tok"}))
    assert ann.may("builds:force:x") and ann.may("slaves:read") and not ann.may("slaveapi:read")
