"""``HawkVerifier``: who a Hawk-signed request (``Authorization: Hawk ...``) or a bewit-signed
URL (``?bewit=...``, GET only) comes from, checked as Taskcluster's auth service checks it.

A request is checked in this order, and each failure names its check (``HawkFailure.reason``)
and never a secret:

1. the header parses (``bad-header``); its ``ext`` is base64 JSON (``bad-ext``);
2. the client exists (``unknown-client``), is not disabled (``disabled``) nor expired
   (``expired``); with ``ext.certificate`` (temporary credentials, master/auth/tempcreds.py)
   the *issuer* is checked so, on every request, then the certificate (``bad-certificate``:
   its form, time window, signature, and the issuer's scopes);
3. the MAC, made with the client's access token (or the temporary token) over the method, the
   URL as the client sent it (``Host`` header, path and query), the timestamp, the nonce and
   ``ext`` (``bad-mac``); the payload hash when the header carries one (``bad-payload-hash``);
4. the timestamp within 15 minutes of the master's clock (``skew``; the answer's message gives
   the master's time);
5. the nonce not seen before for this client and timestamp (``replay``): nonces are kept for
   the skew window (a request older than that fails at 4), at most ``MAX_NONCES`` of them, in
   the process (``NonceCache``) or, with several masters, in their shared database
   (master/auth/nonces.py: a request replayed to another master is refused too);
6. ``ext.authorizedScopes`` satisfied by the caller's scopes, which it then replaces
   (``bad-authorized-scopes``).

A bewit is checked at 1-3 (its MAC covers the URL without the bewit and its expiry) and fails
as ``bad-bewit`` when malformed, expired, or given on another method than GET/HEAD.

Hawk is HMAC-SHA256: microseconds, so it runs on the reactor thread; only the payload hash of
a body over ``INLINE_BODY_BYTES`` is computed in a thread.
"""

import base64
import binascii
import functools
import heapq
import json
from dataclasses import dataclass

from mohawk import Receiver
from mohawk.base import Resource
from mohawk.bewit import strip_bewit
from mohawk.exc import BadHeaderValue, HawkFail, MacMismatch, MisComputedContentHash
from mohawk.util import calculate_mac, parse_authorization_header, strings_match
from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from buildfarm.master.auth.interfaces import Client
from buildfarm.master.auth.nonces import INonceStore
from buildfarm.master.auth.tempcreds import (
    BadCertificate,
    check_named,
    check_signature,
    check_times,
    create_scope,
    parse_certificate,
    temporary_token,
)
from buildfarm.master.auth.users import has_scope

log = Logger()

INLINE_BODY_BYTES = 256 * 1024  # a bigger body's payload hash is computed in a thread
SKEW_S = 15 * 60  # Taskcluster's: a request's timestamp may be this far from the master's clock
MAX_NONCES = 100_000  # nonces remembered at most (each ~200 bytes: ~20 MB; measured)
HAWK_ALGORITHM = "sha256"
BEWIT_METHODS = (b"GET", b"HEAD")
# Failure reasons: the JSON error of a 401 names one.
BAD_HEADER = "bad-header"
BAD_EXT = "bad-ext"
UNKNOWN_CLIENT = "unknown-client"
DISABLED = "disabled"
EXPIRED = "expired"
BAD_CERTIFICATE = "bad-certificate"
BAD_MAC = "bad-mac"
BAD_PAYLOAD_HASH = "bad-payload-hash"
SKEW = "skew"
REPLAY = "replay"
BAD_AUTHORIZED_SCOPES = "bad-authorized-scopes"
BAD_BEWIT = "bad-bewit"


class HawkFailure(Exception):
    """A Hawk check failed: ``reason`` (one of the names above) and a message for the caller."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"Hawk {reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class HawkCaller:
    """Who signed a request: ``client_id`` as the request named it, the scopes it holds for
    this request (expanded, then restricted by ``authorizedScopes``), and, for temporary
    credentials, the ``issuer`` whose credentials they are."""

    client_id: str
    scopes: tuple[str, ...]
    issuer: str | None = None
    temporary: bool = False
    bewit: bool = False


@implementer(INonceStore)
class NonceCache:
    """The nonces of the last ``window_s`` seconds, per client, in this process: ``seen``
    remembers a nonce and says whether it was already there.  At most ``max_size`` are kept;
    past that, the ones closest to leaving the window go first."""

    def __init__(self, clock: IReactorTime, window_s: float = SKEW_S, max_size: int = MAX_NONCES):
        self.clock = clock
        self.window_s = window_s
        self.max_size = max_size
        # One string per (client, nonce, timestamp): a tuple of three strings costs twice as much.
        self._until: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._until)

    def seen(self, client_id: str, nonce: str, ts: str) -> bool:
        now = self.clock.seconds()
        self._forget(lambda until: until <= now)
        key = f"{client_id}\n{nonce}\n{ts}"  # Hawk attributes hold no newline
        if key in self._until:
            return True
        # A request stays acceptable until its timestamp leaves the skew window.
        until = float(ts) + self.window_s if _is_number(ts) else now + self.window_s
        self._until[key] = until
        heapq.heappush(self._heap, (until, key))
        self._forget(lambda _: len(self._until) > self.max_size)
        return False

    def remember(self, client_id: str, nonce: str, ts: str) -> defer.Deferred:
        return defer.succeed(self.seen(client_id, nonce, ts))

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def _forget(self, condition) -> None:
        while self._heap and condition(self._heap[0][0]):
            until, key = heapq.heappop(self._heap)
            if self._until.get(key) == until:
                del self._until[key]


def _nothing(client_id: str) -> None:
    pass


class HawkVerifier:
    """Checks Hawk headers and bewits against the clients of ``clients`` (a ``ClientStore``),
    expanding scopes with ``expander()`` (the auth service's current ``IScopeExpander``)."""

    def __init__(self, clock: IReactorTime, clients, expander, skew_s: float = SKEW_S,
                 max_nonces: int = MAX_NONCES, run_slowly=threads.deferToThread):
        self.clock = clock
        self._run_slowly = run_slowly
        self.clients = clients
        self._expander = expander
        self.skew_s = skew_s
        self.nonces: INonceStore = NonceCache(clock, skew_s, max_nonces)

    # -- the two ways in -----------------------------------------------------------------

    async def verify_header(self, request, attempt=_nothing) -> HawkCaller:
        """The caller of a request whose ``Authorization`` header is Hawk; ``HawkFailure``.
        ``attempt(client_id)`` is called once the header names its client, before any check
        of its credentials (the login limiter charges it, and may raise)."""
        header = _text(request.getHeader(b"authorization"))
        try:
            parsed = parse_authorization_header(header)
        except (HawkFail, ValueError) as e:
            raise HawkFailure(BAD_HEADER, f"malformed Hawk header ({_safe(e)})") from None
        for key in ("id", "ts", "nonce", "mac"):
            if not parsed.get(key):
                raise HawkFailure(BAD_HEADER, f"the Hawk header has no {key}")
        if not parsed["ts"].isdigit():
            raise HawkFailure(BAD_HEADER, "the Hawk timestamp is not a whole number of seconds")
        ext = decode_ext(parsed.get("ext"))
        client_id = parsed["id"]
        attempt(client_id)
        key, scopes, issuer, owner = await self._credentials(client_id, ext)
        check = functools.partial(receive, header, request_url(request), _text(request.method), client_id,
                                  key, _text(request.getHeader(b"content-type") or b""))
        if _body_size(request) > INLINE_BODY_BYTES:
            # Hashing a big body takes milliseconds: a thread does it, reading the body's file.
            await self._run_slowly(check, _rewound(request.content))
        else:
            check(_body(request))
        self._check_skew(parsed["ts"])
        if await self.nonces.remember(client_id, parsed["nonce"], parsed["ts"]):
            raise HawkFailure(REPLAY, f"this request (client {client_id!r}, nonce and timestamp) was already "
                                      "received: a replay")
        scopes = restrict(scopes, ext)
        self._used(owner)
        return HawkCaller(client_id, scopes, issuer, temporary=issuer is not None)

    async def verify_bewit(self, request, attempt=_nothing) -> HawkCaller:
        """The caller of a GET whose URL carries a ``bewit``; ``HawkFailure``; ``attempt`` as
        ``verify_header``'s."""
        if request.method not in BEWIT_METHODS:
            raise HawkFailure(BAD_BEWIT, "a bewit signs GET requests only")
        url = request_url(request)
        try:
            raw, stripped = strip_bewit(url)
            client_id, expiry, mac, ext_text = parse_bewit(raw)
        except (HawkFail, ValueError) as e:
            raise HawkFailure(BAD_BEWIT, f"malformed bewit ({_safe(e)})") from None
        attempt(client_id)
        if not expiry.isdigit():
            raise HawkFailure(BAD_BEWIT, "the bewit's expiry is not a number")
        ext = decode_ext(ext_text or None)
        key, scopes, issuer, owner = await self._credentials(client_id, ext)
        try:
            resource = Resource(url=stripped, method="GET", credentials={"id": client_id, "key": key,
                                                                         "algorithm": HAWK_ALGORITHM},
                                timestamp=expiry, nonce="", ext=ext_text)
            expected = calculate_mac("bewit", resource, None)
        except (HawkFail, ValueError) as e:
            raise HawkFailure(BAD_BEWIT, f"malformed bewit ({_safe(e)})") from None
        if not strings_match(_text(expected), mac):
            raise HawkFailure(BAD_BEWIT, f"the bewit's MAC does not match client {client_id!r}'s access "
                                         "token (wrong token, or the URL differs from what was signed)")
        if int(expiry) < self.clock.seconds():
            raise HawkFailure(BAD_BEWIT, f"the bewit expired at {int(expiry)} (the master's time is "
                                         f"{int(self.clock.seconds())})")
        scopes = restrict(scopes, ext)
        self._used(owner)
        return HawkCaller(client_id, scopes, issuer, temporary=issuer is not None, bewit=True)

    # -- credentials ---------------------------------------------------------------------

    async def _credentials(self, client_id: str, ext: dict) -> tuple[str, tuple[str, ...], str | None,
                                                                  Client]:
        """The key that signs the request, the scopes it carries, the issuer (temporary
        credentials) or None, and the client whose token it is (the issuer's)."""
        certificate = ext.get("certificate")
        if certificate is None:
            client, token = await self._client(client_id, "client")
            return token, tuple(await self._expand(client.scopes)), None, client
        try:
            cert = parse_certificate(certificate)
            check_named(cert, client_id)
            check_times(cert, self.clock.seconds())
        except BadCertificate as e:
            raise HawkFailure(BAD_CERTIFICATE, str(e)) from None
        issuer_id = cert.issuer_for(client_id)
        issuer, issuer_token = await self._client(issuer_id, "issuer")
        try:
            check_signature(cert, client_id, issuer_token)
        except BadCertificate as e:
            raise HawkFailure(BAD_CERTIFICATE, str(e)) from None
        held = await self._expand(issuer.scopes)
        missing = [s for s in cert.scopes if not has_scope(held, s)]
        if cert.issuer is not None and not has_scope(held, create_scope(client_id)):
            missing.insert(0, create_scope(client_id))
        if missing:
            raise HawkFailure(BAD_CERTIFICATE, f"the issuer {issuer_id!r} does not hold the certificate's "
                                               f"scopes (missing: {', '.join(missing)})")
        return temporary_token(cert, issuer_token), tuple(await self._expand(cert.scopes)), issuer_id, issuer

    async def _client(self, client_id: str, role: str) -> tuple[Client, str]:
        found = await self.clients.credentials(client_id)
        if found is None:
            whose = " (the issuer of these temporary credentials)" if role == "issuer" else ""
            raise HawkFailure(UNKNOWN_CLIENT, f"no client {client_id!r}{whose}")
        client, token = found
        if client.disabled:
            raise HawkFailure(DISABLED, f"{role} {client_id!r} is disabled")
        if client.expired(self.clock.seconds()):
            raise HawkFailure(EXPIRED, f"{role} {client_id!r} expired")
        return client, token

    def _used(self, client: Client) -> None:
        """Record (without waiting) that ``client``'s token signed a request that passed."""
        d = self.clients.used(client)
        d.addErrback(lambda f: log.failure("recording that client {client} was used failed", f,
                                           client=client.clientId))

    async def _expand(self, scopes) -> list[str]:
        return list(await self._expander().expand(list(scopes)))

    def _check_skew(self, ts: str) -> None:
        now = self.clock.seconds()
        if not _is_number(ts):
            raise HawkFailure(BAD_HEADER, "the Hawk timestamp is not a number")
        if abs(float(ts) - now) > self.skew_s:
            raise HawkFailure(SKEW, f"the request's timestamp {ts} is more than {int(self.skew_s)} s from "
                                    f"the master's time {int(now)}: fix the client's clock")


# -- helpers --------------------------------------------------------------------------------

def receive(header: str, url: str, method: str, client_id: str, key: str, content_type: str, content) -> None:
    """mohawk's ``Receiver`` on one request: the MAC, and the payload hash when the header has
    one (``content``: the body's bytes, or its file); the timestamp and the nonce are checked
    by the caller, on the master's clock."""
    try:
        Receiver(lambda _id: {"id": client_id, "key": key, "algorithm": HAWK_ALGORITHM}, header, url, method,
                 content=content, content_type=content_type, seen_nonce=lambda *_: False,
                 accept_untrusted_content=True, timestamp_skew_in_seconds=float("inf"))
    except MacMismatch:
        raise HawkFailure(BAD_MAC, f"the request's MAC does not match client {client_id!r}'s access "
                                   "token (wrong token, or the method, URL, Host or ext differ from what "
                                   "was signed; temporary credentials must send their certificate "
                                   "too)") from None
    except MisComputedContentHash:
        raise HawkFailure(BAD_PAYLOAD_HASH, "the payload hash in the header does not match the body "
                                            "and Content-Type sent") from None
    except HawkFail as e:
        raise HawkFailure(BAD_HEADER, _safe(e)) from None
    finally:
        if hasattr(content, "seek"):
            content.seek(0)

def decode_ext(ext: str | None) -> dict:
    """The JSON object a Taskcluster client puts in ``ext`` (base64, URL-safe or not); {}
    when there is none."""
    if not ext:
        return {}
    try:
        padded = ext + "=" * (-len(ext) % 4)
        value = json.loads(base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True))
    except (binascii.Error, ValueError):
        raise HawkFailure(BAD_EXT, "ext must be base64-encoded JSON (as the Taskcluster clients send "
                                   "it)") from None
    if not isinstance(value, dict):
        raise HawkFailure(BAD_EXT, "ext must hold a JSON object")
    return value


def restrict(scopes: tuple[str, ...], ext: dict) -> tuple[str, ...]:
    """The scopes of a request whose ``ext`` may carry ``authorizedScopes``: those replace the
    caller's, if the caller's satisfy them all."""
    authorized = ext.get("authorizedScopes")
    if authorized is None:
        return scopes
    if not isinstance(authorized, list) or not all(isinstance(s, str) for s in authorized):
        raise HawkFailure(BAD_AUTHORIZED_SCOPES, "ext.authorizedScopes must be a list of strings")
    missing = [s for s in authorized if not has_scope(scopes, s)]
    if missing:
        raise HawkFailure(BAD_AUTHORIZED_SCOPES, "the credentials do not satisfy ext.authorizedScopes "
                                                 f"(missing: {', '.join(missing)})")
    return tuple(authorized)


def parse_bewit(raw: str) -> tuple[str, str, str, str]:
    """``(id, expiry, mac, ext)`` of a bewit (URL-safe base64, padding optional)."""
    decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    parts = decoded.split("\\")
    if len(parts) != 4:
        raise ValueError("a bewit has four parts")
    return parts[0], parts[1], parts[2], parts[3]


def request_url(request) -> str:
    """The URL as the client addressed it: its scheme, ``Host`` header, path and query."""
    host = request.getHeader(b"host")
    if not host:
        address = request.getHost()
        host = f"{address.host}:{address.port}"
    scheme = "https" if request.isSecure() else "http"
    return f"{scheme}://{_text(host)}{_text(request.uri)}"


def _body_size(request) -> int:
    if request.content is None:
        return 0
    position = request.content.tell()
    size = request.content.seek(0, 2)
    request.content.seek(position)
    return size


def _rewound(content):
    content.seek(0)
    return content


def _body(request) -> bytes:
    if request.content is None:
        return b""
    request.content.seek(0)
    body = request.content.read()
    request.content.seek(0)
    return body


def _text(value) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else (value or "")


def _is_number(value: str) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _safe(error: Exception) -> str:
    """A mohawk error's message without what could be secret (a MAC it computed)."""
    if isinstance(error, BadHeaderValue | HawkFail) and "ours" in str(error):
        return type(error).__name__
    return str(error)[:200]
