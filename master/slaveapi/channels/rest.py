"""HTTP for the REST channels (Mozpool, Bugzilla): one call and its answer, a deadline over
an operation, and every problem turned into a ``ChannelError`` that says what was seen.

The HTTP client is treq, or anything with treq's ``request``/``content`` (``StubTreq`` in
unit tests, which runs the channel against an in-memory stand-in of the service).
"""

import json
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer

from buildfarm.common.deadline import with_deadline as common_deadline
from buildfarm.master.slaveapi.channels.interfaces import ChannelError

MAX_SHOWN_BODY_CHARS = 200


@dataclass
class Answer:
    """An HTTP answer: status, body, and its JSON value (None when the body is not JSON)."""

    status: int
    body: bytes
    location: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def shown_body(self) -> str:
        """The start of the body, for an error message."""
        text = self.body.decode("utf-8", "replace").strip()
        return text if len(text) <= MAX_SHOWN_BODY_CHARS else text[:MAX_SHOWN_BODY_CHARS] + "..."


async def http_call(http, method: str, url: str, service: str, **kwargs) -> Answer:
    """``method url`` through ``http`` (treq-like); a failure to talk at all is a ChannelError."""
    try:
        response = await http.request(method, url, allow_redirects=False, **kwargs)
        body = await http.content(response)
    except defer.CancelledError:
        raise
    except Exception as e:  # connection refused, no route, DNS, TLS, a dropped connection
        raise ChannelError(f"cannot reach {service} at {url}: {failure_reason(e)}") from None
    location = response.headers.getRawHeaders(b"location", [None])[-1]
    return Answer(response.code, body, location.decode("latin-1") if location else None)


def failure_reason(error: Exception) -> str:
    """What went wrong, in one line (treq wraps the real reasons in a list)."""
    reasons = getattr(error, "reasons", None)
    if reasons:
        return "; ".join(reason.getErrorMessage() for reason in reasons)
    return str(error) or type(error).__name__


def with_deadline(coroutine, deadline_s: float, clock, what: str) -> defer.Deferred:
    """A Deferred of ``coroutine`` that fails with ChannelError after ``deadline_s`` seconds
    (common/deadline.py, with the REST channels' message)."""
    return common_deadline(coroutine, deadline_s, clock,
                           lambda: ChannelError(f"{what}: no answer within {deadline_s:g} s"))


def revealed(value) -> str | None:
    """A setting's plain value: secrets (``Secret``) revealed, other values as given."""
    reveal = getattr(value, "reveal", None)
    return reveal() if reveal is not None else value
