"""``BoundedSite``: the twisted.web Site of every HTTP port of the master (the web port and
the SlaveAPI's own port), with what plain ``Site`` lacks:

- a body cap per path (``BodyRule``), enforced before the body is read: a ``Content-Length``
  over the cap is answered 413 as soon as the headers are in (the body is never read, the
  handler never runs), and a chunked body is cut off the moment it passes the cap.  Bodies
  are held in memory (at most the cap), unless the rule spools them to a file (the store's
  uploads);
- a header timeout and a body timeout (408), next to Twisted's idle timeout;
- no per-request access log lines (API pollers would drown twistd.log), no tracebacks in
  answers, and HTTP/1.1 only (the channel is ours, not Twisted's HTTP/2 one).

After a refusal the connection is half-closed: the answer goes out, what the client still
sends is read and dropped for ``LINGER_S`` or ``LINGER_MAX_BYTES`` (so that it sees the
answer, not a reset), then the connection is closed.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from io import BytesIO
from typing import BinaryIO
from urllib.parse import unquote_to_bytes

from twisted.logger import Logger
from twisted.web.http import RESPONSES, HTTPChannel
from twisted.web.server import Request, Site

from buildfarm.master.http.limits import LINGER_MAX_BYTES, LINGER_S, HTTPLimits

log = Logger()

# (status, message) -> (content type, body) of a refusal made before any handler ran.
ErrorBody = Callable[[int, str], tuple[bytes, bytes]]


def json_error(message: str, **fields) -> dict:
    """The JSON API's error body: ``{"error": message, "message": message, **fields}``.  The
    same line twice: ``error`` is the API's own key, ``message`` the one Taskcluster's client
    shows as its exception's text (``buildfarm.common.client``)."""
    return {"error": message, "message": message, **fields}


def json_error_body(status: int, message: str) -> tuple[bytes, bytes]:
    """The JSON API's error shape (``json_error``)."""
    return b"application/json", json.dumps(json_error(message)).encode()


def html_error_body(status: int, message: str) -> tuple[bytes, bytes]:
    """A minimal HTML error page (the pages' refusals before any page code ran)."""
    title = RESPONSES.get(status, b"Error").decode("latin-1")
    page = (f"<!DOCTYPE html><html><head><title>{status} {escape(title)}</title></head>"
            f"<body><h1>{status} {escape(title)}</h1><p>{escape(message)}</p></body></html>")
    return b"text/html; charset=utf-8", page.encode("utf-8")


# The SlaveAPI's error names, as the original SlaveAPI answered them; the SlaveAPI's own port
# and ``/slaveapi/`` on the web port both answer in that shape (so it lives here, below both).
SLAVEAPI_ERROR_NAMES = {400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found",
                        405: "method not allowed", 408: "request timeout",
                        413: "request entity too large", 429: "too many requests",
                        500: "internal error"}


def slaveapi_error(status: int, message: str) -> dict:
    """The SlaveAPI's error body: ``{"error": <status name>, "msg": message, "message": message}``
    (``message``: the line Taskcluster's client shows)."""
    return {"error": SLAVEAPI_ERROR_NAMES.get(status, "error"), "msg": message, "message": message}


def slaveapi_error_body(status: int, message: str) -> tuple[bytes, bytes]:
    """The SlaveAPI's error shape (``slaveapi_error``)."""
    return b"application/json", json.dumps(slaveapi_error(status, message)).encode()


@dataclass(frozen=True)
class BodyRule:
    """Requests whose path starts with ``prefix`` take bodies of at most ``max_bytes`` (or
    ``max_bytes()``, read per request, so a reconfig applies); refusals are written with
    ``error``.  The body is kept in memory, or written as it arrives to the file ``spool()``
    makes (an upload of up to a GiB costs disk, not memory)."""

    prefix: str
    max_bytes: int | Callable[[], int]
    error: ErrorBody = json_error_body
    spool: Callable[[], BinaryIO] | None = None

    def cap(self) -> int:
        return self.max_bytes() if callable(self.max_bytes) else self.max_bytes


class BoundedRequest(Request):
    """A request whose body is kept in memory (or its rule's spool file) and counted against
    its path's cap."""

    def gotLength(self, length):  # noqa: N802 - twisted.web API
        # The channel refused any declared length over the cap: memory holds at most the cap.
        rule = self.channel._rule
        self.content = rule.spool() if rule is not None and rule.spool is not None else BytesIO()

    def handleContentChunk(self, data):  # noqa: N802
        if self.channel.body_received(len(data)):
            self.content.write(data)


class BoundedChannel(HTTPChannel):
    """An HTTP/1.1 channel that applies its site's body caps and header/body timeouts."""

    _refused = False
    _deadline = None
    _linger = None
    _rule: BodyRule | None = None
    _cap = 0
    _body_bytes = 0
    _dropped = 0

    def dataReceived(self, data):  # noqa: N802
        if self._refused:  # lingering after a refusal: read and drop, up to a point
            self._dropped += len(data)
            if self._dropped > LINGER_MAX_BYTES:
                self.transport.abortConnection()
            return
        if self._deadline is None and not self._handlingRequest:
            self._set_deadline(self.site.limits.header_timeout_s, "headers")
        super().dataReceived(data)

    def rawDataReceived(self, data):  # noqa: N802
        if not self._refused:
            super().rawDataReceived(data)

    def allHeadersReceived(self):  # noqa: N802
        self._rule, self._body_bytes = self.site.body_rule(self._path), 0
        self._cap = self._rule.cap()
        if self.length is not None and self.length > self._cap:
            self.refuse(413, f"request body of {self.length} bytes is over the {self._cap} "
                             f"bytes this path takes")
            return
        super().allHeadersReceived()
        if self.length == 0:
            self._cancel_deadline()
        else:
            self._set_deadline(self.site.limits.body_timeout_s, "body")

    def body_received(self, size: int) -> bool:
        """Count ``size`` more body bytes; False (and the request refused) past the cap."""
        if self._refused:
            return False
        self._body_bytes += size
        if self._rule is not None and self._body_bytes > self._cap:
            self.refuse(413, f"request body is over the {self._cap} bytes this path takes")
            return False
        return True

    def allContentReceived(self):  # noqa: N802
        if self._refused:
            return  # a chunked body's end after its refusal: no handler runs
        self._cancel_deadline()
        self._rule = None  # the next request on this connection finds its own
        super().allContentReceived()

    def refuse(self, status: int, message: str) -> None:
        """Answer ``status`` now, before any handler, and close the connection."""
        if self._refused:
            return
        self._refused = True
        self._cancel_deadline()
        self.setTimeout(None)
        rule = self._rule or self.site.body_rule(getattr(self, "_path", b"/"))
        content_type, body = rule.error(status, message)
        reason = RESPONSES.get(status, b"Error")
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: close\r\n"
                b"cache-control: no-store\r\n\r\n" % (status, reason, content_type, len(body)))
        log.info("HTTP {status} before any handler to {peer}: {message}", status=status,
                 peer=_peer(self.transport), message=message)
        del self.requests[:]  # no handler ever sees it
        self.transport.write(head + body)
        self._networkProducer.unregisterProducer()
        half_close = getattr(self.transport, "loseWriteConnection", None)
        if half_close is None:
            self.transport.loseConnection()
            return
        half_close()
        self.transport.resumeProducing()
        self._linger = self.callLater(LINGER_S, self.transport.abortConnection)

    def connectionLost(self, reason):  # noqa: N802
        self._cancel_deadline()
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)

    def _set_deadline(self, seconds: float | None, what: str) -> None:
        self._cancel_deadline()
        if seconds:
            self._deadline = self.callLater(seconds, self._too_slow, what, seconds)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _too_slow(self, what: str, seconds: float) -> None:
        self._deadline = None
        self.refuse(408, f"the request's {what} did not arrive within {seconds:g} s")


class BoundedSite(Site):
    """The Site of one HTTP port: ``rules`` give each path prefix its body cap (the longest
    matching prefix wins; ``default`` serves the rest), ``limits`` the timeouts."""

    protocol = BoundedChannel
    requestFactory = BoundedRequest
    displayTracebacks = False

    def __init__(self, resource, rules: Sequence[BodyRule], default: BodyRule,
                 limits: HTTPLimits | None = None, reactor=None):
        limits = limits or HTTPLimits()
        super().__init__(resource, timeout=limits.idle_timeout_s, reactor=reactor)
        self.limits = limits
        self.default_rule = default
        self.rules = sorted(rules, key=lambda rule: len(rule.prefix), reverse=True)

    def body_rule(self, path: bytes) -> BodyRule:
        """The rule of a request line's target (origin or absolute form, percent-decoded)."""
        target = path.split(b"?", 1)[0]
        if b"://" in target:  # absolute form: http://host/path
            target = b"/" + target.split(b"/", 3)[-1] if target.count(b"/") >= 3 else b"/"
        text = unquote_to_bytes(target).decode("utf-8", "replace")
        return next((rule for rule in self.rules if text.startswith(rule.prefix)), self.default_rule)

    def acceptableProtocols(self):  # noqa: N802 - ALPN: our channel speaks HTTP/1.1 only
        return [b"http/1.1"]

    def log(self, request):
        pass


def _peer(transport) -> str:
    peer = transport.getPeer() if transport is not None else None
    return getattr(peer, "host", None) or "?"
