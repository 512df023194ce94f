"""``PBLimits``: what the slave port accepts, from whom and for how long.

Before login a connection can only speak PB's login (``version``, ``login``, ``respond``,
``decref``), in small messages, a few of them, within a deadline; at most
``max_pending_logins`` such connections exist at once.  A connection whose peer proved a
slave's password gets the larger message limits an attached slave needs (512 KiB transfer
blocks, slave info with its environment, batched log text).
"""

from dataclasses import dataclass

from buildfarm.common.pbwire import MessageLimits

KiB, MiB = 1024, 1024 * 1024

# PB's login messages are under 1 KiB and a dozen items (a name, a 16-byte MD5 response, a
# reference to the slave's bot): these leave room for long names and nothing more.
PRE_LOGIN_MESSAGE_LIMITS = MessageLimits(max_bytes=16 * KiB, max_items=256)
PRE_LOGIN_MAX_MESSAGES = 16  # version, login, respond, decref: a few logins' worth

DEFAULT_LOGIN_TIMEOUT_S = 30.0
DEFAULT_MAX_PENDING_LOGINS = 1000
# After login: an upload block is one 512 KiB string, an update one 64 Ki-character text
# (256 KiB of UTF-8 at most), slave info one dict of its environment; 32 times the largest.
DEFAULT_MAX_MESSAGE_BYTES = 16 * MiB
DEFAULT_MAX_MESSAGE_ITEMS = 100_000


@dataclass(frozen=True)
class PBLimits:
    """The limits of the slave port, from ``c['protocols']['pb']``."""

    login_timeout: float = DEFAULT_LOGIN_TIMEOUT_S
    max_pending_logins: int = DEFAULT_MAX_PENDING_LOGINS
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_message_items: int = DEFAULT_MAX_MESSAGE_ITEMS

    def after_login(self) -> MessageLimits:
        """The message limits of a connection that proved a slave's password."""
        return MessageLimits(max_bytes=self.max_message_bytes, max_items=self.max_message_items)
