"""Text from the wire: PB peers send names and output as str or bytes."""


def as_text(value) -> str:
    """``value`` as str: bytes decoded as UTF-8 (undecodable bytes replaced), else ``str()``."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
