"""Reading a request's body as a JSON object, bounded in size and shape, for the JSON API and
the SlaveAPI (each turns ``BadBody`` into its own error format).

The size is refused earlier too, before the body is read at all (http/site.py); the check
here is the handler's own.  A JSON body is refused (400) when it nests deeper than
``MAX_JSON_DEPTH``, holds a number too large for a float (``1e400``), ``NaN``/``Infinity``,
or a string that is no valid Unicode text (a lone surrogate such as ``"\\ud800"``, which
would fail later, in the database or in an encoder).
"""

import json
import math

MAX_JSON_DEPTH = 64


class BadBody(Exception):
    """A body that cannot be taken: ``status`` (413 or 400) and a message saying why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def read_body(request, max_bytes: int) -> bytes:
    """The whole body; ``BadBody(413)`` past ``max_bytes``."""
    if request.content is None:
        return b""
    request.content.seek(0)
    raw = request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise BadBody(413, f"request body over {max_bytes} bytes")
    return raw


def json_object(raw: bytes, what: str = "a JSON object") -> dict:
    """``raw`` parsed as a JSON object ({} when empty); ``BadBody(400)`` otherwise."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError:
        raise BadBody(400, f"request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BadBody(400, f"request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise BadBody(400, f"request body must be {what}")
    check_json_value(body)
    return body


def check_json_value(value, depth: int = 1) -> None:
    """``BadBody(400)`` if ``value`` nests deeper than ``MAX_JSON_DEPTH`` or holds a text
    that is not valid Unicode (lone surrogates)."""
    if depth > MAX_JSON_DEPTH:
        raise BadBody(400, f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key)
            check_json_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json_value(item, depth + 1)


def check_text(text: str) -> None:
    """``BadBody(400)`` if ``text`` cannot be encoded as UTF-8 (a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadBody(400, f"request body holds a string that is not valid Unicode "
                           f"(lone surrogate at {e.start})") from None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")
