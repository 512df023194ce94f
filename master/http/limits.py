"""``HTTPLimits``: the timeouts and caps every HTTP port of the master applies, from
``c['www']`` (docs/security.md, "HTTP ports: limits and timeouts")."""

from dataclasses import dataclass

# How long a connection may sit with no request in progress before it is closed.
IDLE_TIMEOUT_S = 60.0
# From the first byte of a request to the end of its headers (a slow-header client is cut off).
HEADER_TIMEOUT_S = 30.0
# From the end of the headers to the end of the body (a slow-body client is cut off).
BODY_TIMEOUT_S = 60.0
# Live-log (Server-Sent Events) streams open at once on the web port.
MAX_EVENT_STREAMS = 64
# After a refusal (413, 408) the master reads and drops what the client still sends this long,
# so the client sees the answer instead of a reset, then closes the connection.
LINGER_S = 2.0
# ...or until it sent this much more: then the connection is cut (a reset).
LINGER_MAX_BYTES = 1024 * 1024
# The largest id, offset or count a URL may carry: the largest integer a JSON client holds
# exactly, and far below what a 64-bit database column or offset + limit overflows at.
MAX_URL_INT = 2**53 - 1
# The largest body a SlaveAPI request may carry, on its own port and under /slaveapi/.
SLAVEAPI_MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class HTTPLimits:
    """The limits of one HTTP port (``c['www']`` keys in brackets)."""

    idle_timeout_s: float = IDLE_TIMEOUT_S  # ['idle_timeout']
    header_timeout_s: float = HEADER_TIMEOUT_S  # ['header_timeout']
    body_timeout_s: float = BODY_TIMEOUT_S  # ['body_timeout']
    max_event_streams: int = MAX_EVENT_STREAMS  # ['max_event_streams']


# c['www'] key -> (HTTPLimits field, whether it must be an int)
CONFIG_KEYS = {
    "idle_timeout": ("idle_timeout_s", False),
    "header_timeout": ("header_timeout_s", False),
    "body_timeout": ("body_timeout_s", False),
    "max_event_streams": ("max_event_streams", True),
}

