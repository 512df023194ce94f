"""``HttpStatusPush`` (Buildbot's ``reporters.http``): POSTs each report's body, as JSON,
to ``serverUrl``.

By default it reports every build's start and its end when it succeeded, failed or warned
(Buildbot's default generator: a ``BuildStatusGenerator`` of the default mode with
``report_new=True``, whose formatter's body is the build dict, master/reporters/utils.py).
``auth`` (``(user, password)``, basic auth) and ``headers`` may hold ``util.Secret`` or
``util.Interpolate('%(secret:...)s')``: rendered at each attempt from
``c['secretsProviders']``.  A 2xx answer is success; a 4xx gives the report up (logged);
a connection error, a 5xx, a 408/429 or no answer within ``timeout`` is tried again with
backoff.  ``verify=False`` skips the TLS certificate check; ``debug=True`` logs each answer;
``skip_encoding`` has no effect (the body is always UTF-8 JSON).
"""

import json

import treq
from OpenSSL import SSL
from treq.client import HTTPClient
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import CertificateOptions
from twisted.logger import Logger
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, ResponseNeverReceived
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from buildfarm.master.reporters.base import ReporterBase
from buildfarm.master.reporters.generators.build import BuildStatusGenerator
from buildfarm.master.reporters.message import MessageFormatterFunction
from buildfarm.master.reporters.sender import ReportRejected

log = Logger()

REQUEST_TIMEOUT_S = 30.0
MAX_LOGGED_ANSWER_CHARS = 500


class EndpointFailed(Exception):
    """The endpoint answered with an error worth trying again (5xx, ...)."""


@implementer(IOpenSSLClientConnectionCreator)
class _UncheckedTLS:
    """A TLS client connection that checks no certificate (it still sends the server name)."""

    def __init__(self, hostname: bytes):
        self.hostname = hostname
        self._context = CertificateOptions(verify=False).getContext()

    def clientConnectionForTLS(self, tls_protocol):  # noqa: N802 - Twisted's name
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tls_protocol)
        connection.set_tlsext_host_name(self.hostname)
        return connection


@implementer(IPolicyForHTTPS)
class _NoVerification:
    """TLS without checking the server's certificate (``verify=False``)."""

    def creatorForNetloc(self, hostname: bytes, port: int) -> _UncheckedTLS:  # noqa: N802 - Twisted's name
        return _UncheckedTLS(hostname)


def default_generators() -> list:
    """Buildbot's: every build's start, and its end when it succeeded, failed or warned; the
    body is the build dict."""
    formatter = MessageFormatterFunction(lambda context: context["build"], "json")
    return [BuildStatusGenerator(report_new=True, message_formatter=formatter)]


def http_client(reactor, verify: bool) -> HTTPClient:
    """treq's client on ``reactor``, checking certificates unless ``verify`` is false: the one
    HTTP client of the reporters that push to a web service."""
    policy = BrowserLikePolicyForHTTPS() if verify else _NoVerification()
    return HTTPClient(Agent(reactor, contextFactory=policy))


class HTTPReporterBase(ReporterBase):
    """A reporter that talks to a web service: its treq client, made at start (unless a test
    gave one), checking certificates unless ``verify=False``, and its request ``timeout``."""

    def __init__(self, generators, verify=None, timeout: float = REQUEST_TIMEOUT_S, **kwargs):
        super().__init__(generators, **kwargs)
        self.verify = verify is not False
        self.timeout = timeout
        self.client = None  # treq's HTTPClient (or a StubTreq in tests), made at start

    def startService(self):  # noqa: N802 - Twisted's name
        result = super().startService()
        if self.client is None:
            self.client = self.make_client(self.master.reactor)
        return result

    def make_client(self, reactor) -> HTTPClient:
        return http_client(reactor, self.verify)


class HttpStatusPush(HTTPReporterBase):
    """POST each report's body (JSON) to ``serverUrl`` (see the module's docstring)."""

    def __init__(self, serverUrl: str, auth=None, headers=None, debug=None, verify=None,  # noqa: N803
                 generators=None, skip_encoding=None, cert=None, timeout: float = REQUEST_TIMEOUT_S,
                 name: str | None = None, **kwargs):
        if not isinstance(serverUrl, str) or not serverUrl.startswith(("http://", "https://")):
            raise ValueError("HttpStatusPush: serverUrl must be an http:// or https:// URL, "
                             f"not {serverUrl!r}")
        if auth is not None and (not isinstance(auth, tuple | list) or len(auth) != 2):
            raise ValueError("HttpStatusPush: auth must be a (user, password) pair")
        if headers is not None and not isinstance(headers, dict):
            raise ValueError(f"HttpStatusPush: headers must be a dict, not {headers!r}")
        if cert is not None:
            raise ValueError("HttpStatusPush: cert (a client certificate) is not supported by buildfarm")
        super().__init__(generators if generators is not None else default_generators(),
                         verify=verify, timeout=timeout, name=name, **kwargs)
        self.server_url = serverUrl
        self.auth = tuple(auth) if auth is not None else None
        self.headers = dict(headers or {})
        self.debug = bool(debug)
        self.skip_encoding = skip_encoding

    async def sendMessage(self, reports: list) -> None:  # noqa: N802 - Buildbot's name
        auth, headers = await self._rendered_credentials()
        body = json.dumps(reports[0]["body"]).encode("utf-8")
        headers = {**headers, "Content-Type": "application/json"}
        try:
            response = await self.client.post(self.server_url, data=body, headers=headers, auth=auth,
                                              timeout=self.timeout, reactor=self.master.reactor)
        except ResponseNeverReceived as e:
            why = "; ".join(f.getErrorMessage() or f.type.__name__ for f in e.reasons)
            raise EndpointFailed(f"{self.server_url} gave no answer (within {self.timeout:g}s?): "
                                 f"{why}") from e
        answer = await treq.text_content(response, encoding="utf-8")
        if self.debug:
            log.info("HttpStatusPush {name}: {code}: {answer}", name=self.name, code=response.code,
                     answer=answer[:MAX_LOGGED_ANSWER_CHARS])
        if 200 <= response.code < 300:
            return
        why = f"{self.server_url} answered {response.code}: {answer[:MAX_LOGGED_ANSWER_CHARS]}"
        if 400 <= response.code < 500 and response.code not in (408, 429):
            raise ReportRejected(why)
        raise EndpointFailed(why)

    async def _rendered_credentials(self) -> tuple[tuple | None, dict]:
        """``auth`` and ``headers`` with their secrets (fetched now) in place."""
        auth, headers = await self.render_secrets([self.auth, self.headers])
        return (tuple(auth) if auth is not None else None), {str(k): str(v) for k, v in headers.items()}


__all__ = ["HttpStatusPush"]
