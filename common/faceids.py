"""The Queue's taskIds of what buildfarm runs outside the Queue: a build request, a buildset
(the task group of its requests) and a Swarming task (docs/taskcluster.md, "One engine, three
faces").

Each is a Taskcluster slugid (a v4 UUID in url-safe base64 without padding, 22 characters)
made from a kind and a number, and read back from it: no table maps one to the other.  The
UUID's bytes are::

    0-5   the kind, whose base64 is the slug's first 8 characters: ``buildreq``, ``buildset``,
          ``swarming`` (so a reader sees what an id names)
    6     0x40: the UUID version 4 (high nibble) and this format's version 0 (low nibble)
    7     the number's bits 62..69
    8     0x80 | the number's bits 56..61 (the RFC 4122 variant in the two high bits)
    9-15  the number's bits 0..55

so every id passes the Queue's slugid pattern (master/queue/model.py ``SLUGID``).  This module
imports nothing of the master: a client may compute the id of build request 42 itself.
"""

from __future__ import annotations

import base64
import binascii

BUILD_REQUEST = "buildreq"
BUILDSET = "buildset"
SWARMING = "swarming"
KINDS = (BUILD_REQUEST, BUILDSET, SWARMING)
MAX_NUMBER = (1 << 70) - 1
_VERSION_BYTE = 0x40  # UUID version 4, format 0
_VARIANT = 0x80
_PREFIXES = {base64.urlsafe_b64decode(kind): kind for kind in KINDS}


def face_id(kind: str, number: int) -> str:
    """The slugid of ``number`` (a build request id, a buildset id, a Swarming request id)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= MAX_NUMBER:
        raise ValueError(f"number must be an integer from 0 to 2**70 - 1, not {number!r}")
    raw = (base64.urlsafe_b64decode(kind) + bytes([_VERSION_BYTE, (number >> 62) & 0xFF,
                                                   _VARIANT | ((number >> 56) & 0x3F)])
           + (number & ((1 << 56) - 1)).to_bytes(7, "big"))
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def parse_face_id(slug: str) -> tuple[str, int] | None:
    """``(kind, number)`` of a slugid ``face_id`` made; None for any other string (a random
    slugid, a malformed one)."""
    if not isinstance(slug, str) or len(slug) != 22 or not slug.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(slug + "==")
    except (binascii.Error, ValueError):
        return None
    kind = _PREFIXES.get(raw[:6])
    if kind is None or raw[6] != _VERSION_BYTE or raw[8] & 0xC0 != _VARIANT:
        return None
    number = (raw[7] << 62) | ((raw[8] & 0x3F) << 56) | int.from_bytes(raw[9:], "big")
    return (kind, number) if face_id(kind, number) == slug else None
