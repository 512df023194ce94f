"""Reading a request's body as a JSON object, bounded in size, for the JSON API and the
SlaveAPI (each turns ``BadBody`` into its own error format)."""

import json


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
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadBody(400, f"request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise BadBody(400, f"request body must be {what}")
    return body
