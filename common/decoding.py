"""Text from the wire: PB peers send names and output as str or bytes; one decoder for both sides.

The master is lenient (``errors="replace"``, the default): a name or reason it only shows or
logs must never fail.  The slave is strict (``errors="strict"``): a command argument with
undecodable bytes is refused, and ``UnicodeDecodeError`` is a ``ValueError``, the error its
argument checks report.
"""

REPLACE = "replace"  # undecodable bytes become U+FFFD
STRICT = "strict"  # undecodable bytes raise UnicodeDecodeError (a ValueError)


def as_text(value, errors: str = REPLACE) -> str:
    """``value`` as str: bytes decoded as UTF-8 with ``errors`` (``REPLACE`` or ``STRICT``),
    anything else through ``str()``."""
    return value.decode("utf-8", errors) if isinstance(value, bytes) else str(value)
