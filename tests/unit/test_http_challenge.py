"""master/http/challenge.py: the headers of an authentication refusal, one place for the JSON
API and the SlaveAPI."""

from twisted.web.test.requesthelper import DummyRequest

from buildfarm.master.auth.identity import AuthError
from buildfarm.master.http.challenge import add_refusal_headers


def test_a_401_challenges_with_basic_and_bearer_in_the_realm():
    request = DummyRequest([b""])
    add_refusal_headers(request, AuthError(401, "log in"), "farm")
    assert request.responseHeaders.getRawHeaders(b"www-authenticate") == [
        b'Basic realm="farm"', b'Bearer realm="farm"']
    assert request.responseHeaders.getRawHeaders(b"retry-after") is None


def test_a_rate_limit_says_when_to_retry_in_whole_seconds_and_does_not_challenge():
    request = DummyRequest([b""])
    add_refusal_headers(request, AuthError(429, "slow down", retry_after=5.2), "farm")
    assert request.responseHeaders.getRawHeaders(b"retry-after") == [b"6"]
    assert request.responseHeaders.getRawHeaders(b"www-authenticate") is None
