"""The web UI over plain HTTP (urllib, no browser): 404 pages, login and its cookie, and the
refusals of cross-site request forgery on state-changing forms."""

import re

from browserkit import basic_auth, http

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def log_in(farm, user: str, password: str) -> tuple[str, str]:
    """``(cookie header, csrf token)`` of a new session of ``user``."""
    status, headers, _ = http("POST", farm.url + "/login", {"username": user, "password": password},
                              {"Origin": farm.url})
    assert status == 303, status
    cookie = headers["Set-Cookie"].split(";")[0]
    _, _, page = http("GET", farm.url + "/slaves/bs1", headers={"Cookie": cookie})
    return cookie, CSRF_INPUT.search(page).group(1)


def test_unknown_pages_are_html_404_pages_and_the_api_keeps_json(farm):
    for path in ("/builds/999999", "/builders/nope", "/slaves/nope", "/no/such/page", "/static/nope.css",
                 "/builds/1/steps/99/logs/stdio", "/buildrequests/999999/cancel"):
        status, headers, body = http("GET", farm.url + path)
        if path.endswith("/cancel"):
            assert status == 405, path  # a POST-only address
            continue
        assert status == 404 and headers["Content-Type"].startswith("text/html"), path
        assert "<title>Not found" in body and "HTTP 404" in body, path
    status, headers, body = http("GET", farm.url + "/api/v1/builds/999999")
    assert status == 404 and headers["Content-Type"] == "application/json" and '"error"' in body
    status, _, body = http("GET", farm.url + "/slaveapi/slaves", headers=basic_auth("viewer", "v1ew"))
    assert status == 200 and '"slaves"' in body
    _, headers, _ = http("GET", farm.url + "/metrics")
    assert not headers["Content-Type"].startswith("text/html")  # the JSON app's, not a page
    status, _, body = http("GET", farm.url + "/builders/lines?page=zero")
    assert status == 400 and "page must be an integer" in body


def test_login_sets_an_httponly_samesite_cookie_and_never_redirects_off_site(farm):
    status, headers, _ = http("POST", farm.url + "/login",
                              {"username": "oncall", "password": "s3cret", "next": "//evil.example/x"},
                              {"Origin": farm.url})
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith("buildfarm_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    status, headers, body = http("POST", farm.url + "/login", {"username": "oncall", "password": "nope"})
    assert status == 401 and "Wrong user name or password." in body and "Set-Cookie" not in headers
    status, _, body = http("POST", farm.url + "/login", {"username": "oncall", "password": "s3cret"},
                           {"Origin": "http://evil.example"})
    assert status == 403 and "another site" in body


def test_state_changing_forms_need_a_session_the_csrf_token_a_same_site_origin_and_the_scope(farm):
    cookie, token = log_in(farm, "oncall", "s3cret")
    action = farm.url + "/slaves/bs1/actions/buildslave_uptime"

    status, _, body = http("POST", action, {"csrf_token": token})
    assert status == 401 and "anonymous users may look, not act" in body
    status, _, body = http("POST", action, {}, {"Cookie": cookie})
    assert status == 403 and "bad CSRF token" in body
    status, _, body = http("POST", action, {"csrf_token": "forged"}, {"Cookie": cookie})
    assert status == 403 and "bad CSRF token" in body
    status, _, body = http("POST", action, {"csrf_token": token},
                           {"Cookie": cookie, "Origin": "http://evil.example"})
    assert status == 403 and "another site" in body
    status, _, body = http("POST", action, {"csrf_token": token},
                           {"Cookie": cookie, "Referer": "http://evil.example/page"})
    assert status == 403 and "another site" in body
    status, _, body = http("POST", action, {"csrf_token": token}, {"Cookie": cookie})
    assert status == 403 and "another site" in body  # a cookie write without Origin or Referer

    status, headers, _ = http("POST", action, {"csrf_token": token}, {"Cookie": cookie, "Origin": farm.url})
    assert status == 303 and headers["Location"].startswith("/slaves/bs1?requested=")


def test_a_user_without_the_scope_is_refused_with_the_scope_named(farm):
    cookie, token = log_in(farm, "viewer", "v1ew")
    status, _, body = http("POST", farm.url + "/builders/lines/force", {"csrf_token": token},
                           {"Cookie": cookie, "Origin": farm.url})
    assert status == 403 and "lacks the scope &#39;builds:force:lines&#39;" in body
    _, _, page = http("GET", farm.url + "/slaves/bs1", headers={"Cookie": cookie})
    assert re.search(r'<button type="submit" class="danger" disabled title="needs the scope '
                     r'slaveapi:reboot:bs1">reboot</button>', page)


def test_logout_ends_the_session(farm):
    cookie, token = log_in(farm, "oncall", "s3cret")
    status, headers, _ = http("POST", farm.url + "/logout", {"csrf_token": token},
                              {"Cookie": cookie, "Origin": farm.url})
    assert status == 303 and "Max-Age=0" in headers["Set-Cookie"]
    status, _, body = http("POST", farm.url + "/builders/lines/force", {"csrf_token": token},
                           {"Cookie": cookie, "Origin": farm.url})
    assert status == 401 and "anonymous users may look, not act" in body


def test_pages_forbid_framing_and_inline_scripts(farm):
    _, headers, _ = http("GET", farm.url + "/")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
