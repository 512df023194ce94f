"""``HttpStatusPush`` (master/reporters/http.py) against an in-memory HTTP resource (treq's
``StubTreq``): the request it makes, secrets in ``auth`` and ``headers``, which answers give
a report up and which are retried, and its arguments' checks."""

import base64
import datetime
import ipaddress
import json
import os
import socket

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from treq.testing import StubTreq
from twisted.internet import reactor, ssl
from twisted.logger import capturedLogs, formatEvent
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface.verify import verifyObject

from buildfarm.master.config import MasterConfig
from buildfarm.master.process.properties import Interpolate, Secret, SecretNotFound
from buildfarm.master.reporters.generators.build import BuildStatusGenerator
from buildfarm.master.reporters.http import EndpointFailed, HttpStatusPush, _NoVerification
from buildfarm.master.reporters.interfaces import IReporter
from buildfarm.master.reporters.sender import ReportRejected
from fixtures.memorymaster import MASTER_CFG, start_memory_master


class Endpoint(Resource):
    """Answers ``status`` to a POST and records it."""

    isLeaf = True

    def __init__(self, status: int = 200):
        super().__init__()
        self.status = status
        self.requests: list[tuple[bytes, bytes, dict, bytes]] = []

    def render_POST(self, request):  # noqa: N802 - twisted.web's name
        headers = {k.decode(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}
        self.requests.append((request.method, request.uri, headers, request.content.read()))
        request.setResponseCode(self.status)
        return b'{"error": "nope"}' if self.status >= 400 else b"{}"


@pytest_twisted.async_yield_fixture
async def master(tmp_path):
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    (secrets_dir / "token").write_text("t0ken")
    os.chmod(secrets_dir / "token", 0o600)
    cfg = MASTER_CFG + (f"from buildfarm.master.plugins import secrets\n"
                        f"c['secretsProviders'] = [secrets.SecretInAFile(dirname={str(secrets_dir)!r})]\n")
    started = await start_memory_master(tmp_path, cfg)
    yield started
    await started.stopService()


def push_to(master, endpoint: Endpoint, **kwargs) -> HttpStatusPush:
    push = HttpStatusPush("http://ci.example.org/hook", **kwargs)
    push.master, push.client = master, StubTreq(endpoint)
    return push


@pytest_twisted.ensureDeferred
async def test_the_body_is_posted_as_json_with_auth_and_headers_from_secrets(master):
    endpoint = Endpoint()
    push = push_to(master, endpoint, auth=("ci", Secret("token")),
                   headers={"X-Token": Interpolate("%(secret:token)s"), "X-Plain": "yes"})
    await push.sendMessage([{"body": {"buildid": 1, "results": 0}}])
    [(method, uri, headers, body)] = endpoint.requests
    assert (method, uri) == (b"POST", b"/hook")
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"ci:t0ken").decode()
    assert (headers["X-Token"], headers["X-Plain"]) == ("t0ken", "yes")
    assert json.loads(body) == {"buildid": 1, "results": 0}


@pytest_twisted.ensureDeferred
async def test_a_4xx_gives_the_report_up_and_a_5xx_is_retried(master):
    with pytest.raises(ReportRejected, match="answered 404"):
        await push_to(master, Endpoint(404)).sendMessage([{"body": {}}])
    with pytest.raises(EndpointFailed, match="answered 503"):
        await push_to(master, Endpoint(503)).sendMessage([{"body": {}}])
    with pytest.raises(EndpointFailed, match="answered 429"):
        await push_to(master, Endpoint(429)).sendMessage([{"body": {}}])


@pytest_twisted.ensureDeferred
async def test_a_missing_secret_fails_the_attempt_and_sends_nothing(master):
    endpoint = Endpoint()
    with pytest.raises(SecretNotFound):
        await push_to(master, endpoint, auth=("ci", Secret("absent"))).sendMessage([{"body": {}}])
    assert endpoint.requests == []


def test_the_default_generator_is_buildbots():
    [generator] = HttpStatusPush("http://ci.example.org/").generators
    assert isinstance(generator, BuildStatusGenerator)
    assert generator.mode == ("failing", "passing", "warnings")
    assert generator.report_new is True
    assert generator.formatter.template_type == "json"


@pytest.mark.parametrize("kwargs,error", [
    ({"serverUrl": "ftp://x/"}, "serverUrl must be an http:// or https:// URL"),
    ({"serverUrl": "http://x/", "auth": "user:pw"}, r"auth must be a \(user, password\) pair"),
    ({"serverUrl": "http://x/", "headers": ["X: y"]}, "headers must be a dict"),
    ({"serverUrl": "http://x/", "cert": "client.pem"}, "cert .* is not supported"),
    ({"serverUrl": "http://x/", "generators": ["not a generator"]}, "is not a report generator"),
    ({"serverUrl": "http://x/", "name": ""}, "name must be a string of 1 to 200 characters"),
    ({"serverUrl": "http://x/", "name": "n" * 201}, "name must be a string of 1 to 200 characters"),
])
def test_wrong_arguments_are_refused(kwargs, error):
    with pytest.raises(ValueError, match=error):
        HttpStatusPush(**kwargs)


def test_verify_false_connects_without_checking_the_certificate():
    creator = _NoVerification().creatorForNetloc(b"ci.example.org", 443)
    connection = creator.clientConnectionForTLS(object())
    assert connection.get_context().get_verify_mode() == SSL.VERIFY_NONE
    assert connection.get_servername() == b"ci.example.org"
    assert HttpStatusPush("https://x/", verify=False).verify is False


def self_signed_tls_options():
    """Server TLS options with a fresh self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ssl.PrivateCertificate.loadPEM(pem).options()


class RealReactorMaster:
    """What ``sendMessage`` reads of the master, on the real reactor (for a real TLS port)."""

    def __init__(self):
        self.reactor = reactor
        self.config = MasterConfig("master.cfg")


@pytest_twisted.ensureDeferred
async def test_verify_false_posts_to_a_self_signed_https_endpoint_and_the_default_refuses_it():
    endpoint = Endpoint()
    port = reactor.listenSSL(0, Site(endpoint), self_signed_tls_options(), interface="127.0.0.1")
    url = f"https://127.0.0.1:{port.getHost().port}/hook"
    try:
        master = RealReactorMaster()
        unchecked = HttpStatusPush(url, verify=False)
        unchecked.master = master
        unchecked.client = unchecked.make_client(master.reactor)
        await unchecked.sendMessage([{"body": {"buildid": 1}}])
        assert [(m, u) for m, u, _, _ in endpoint.requests] == [(b"POST", b"/hook")]

        checked = HttpStatusPush(url)
        checked.master = master
        checked.client = checked.make_client(master.reactor)
        with pytest.raises(Exception) as raised:
            await checked.sendMessage([{"body": {"buildid": 2}}])
        assert not isinstance(raised.value, ReportRejected)  # retried: the certificate may be fixed
        assert "certificate verify failed" in repr(raised.value)
        assert len(endpoint.requests) == 1
    finally:
        await port.stopListening()


def test_httpstatuspush_provides_ireporter():
    assert verifyObject(IReporter, HttpStatusPush("http://ci.example.org/hook", name="dashboard"))


@pytest_twisted.ensureDeferred
async def test_debug_logs_each_answer(master):
    with capturedLogs() as logs:
        await push_to(master, Endpoint(), debug=True).sendMessage([{"body": {}}])
        await push_to(master, Endpoint()).sendMessage([{"body": {}}])
    answers = [formatEvent(e) for e in logs if "HttpStatusPush" in formatEvent(e)]
    assert answers == ["HttpStatusPush HttpStatusPush: 200: {}"]


@pytest_twisted.ensureDeferred
async def test_an_endpoint_that_never_answers_fails_the_attempt_after_the_timeout():
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(1)  # accepts, never answers
    try:
        push = HttpStatusPush(f"http://127.0.0.1:{listening.getsockname()[1]}/hook", timeout=0.2)
        push.master = RealReactorMaster()
        push.client = push.make_client(reactor)
        with pytest.raises(EndpointFailed, match=r"gave no answer \(within 0.2s\?\)"):
            await push.sendMessage([{"body": {}}])
    finally:
        listening.close()
