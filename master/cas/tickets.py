"""Upload tickets: what ``preupload`` hands out and ``store_inline``/the PUT/``finalize_gs_upload``
take back.

A ticket names one item (namespace, digest, size, whether it is an ``.isolated``) and when it
was issued, signed with HMAC-SHA256 under the master's upload secret: a ticket cannot be forged,
nor reused for another digest, size, namespace or kind, and it expires ``TICKET_TTL_S`` after
it was issued.  Its form is ``<base64url JSON>.<base64url MAC>``, safe in a URL path.
"""

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

TICKET_TTL_S = 24 * 3600
MAX_TICKET_CHARS = 1024


class BadTicket(ValueError):
    """A ticket that was not issued by this master's secret, is malformed or has expired."""


@dataclass(frozen=True)
class Ticket:
    """The item an upload ticket allows to be stored."""

    namespace: str
    digest: str
    size: int
    is_isolated: bool
    issued: float  # the reactor's seconds() when preupload issued it


class TicketSigner:
    """Issues and checks tickets under ``secret`` (bytes) with the time of ``clock``."""

    def __init__(self, secret: bytes, clock, ttl_s: float = TICKET_TTL_S):
        self._secret = secret
        self.clock = clock
        self.ttl_s = ttl_s

    def issue(self, namespace: str, digest: str, size: int, is_isolated: bool) -> str:
        payload = json.dumps({"n": namespace, "d": digest, "s": size, "i": bool(is_isolated),
                              "t": int(self.clock.seconds())}, sort_keys=True, separators=(",", ":"))
        body = b64url(payload.encode())
        return f"{body}.{b64url(self._mac(body))}"

    def check(self, ticket) -> Ticket:
        """The ``Ticket`` ``ticket`` stands for; ``BadTicket`` unless this master issued it
        and it has not expired."""
        if not isinstance(ticket, str) or len(ticket) > MAX_TICKET_CHARS or ticket.count(".") != 1:
            raise BadTicket("upload_ticket is not a ticket this server issued")
        body, mac = ticket.split(".")
        try:
            given = unb64url(mac)
            fields = json.loads(unb64url(body))
        except (ValueError, binascii.Error):
            raise BadTicket("upload_ticket is not a ticket this server issued") from None
        if not hmac.compare_digest(given, self._mac(body)):
            raise BadTicket("upload_ticket's signature does not match: it was not issued by this server")
        try:
            found = Ticket(str(fields["n"]), str(fields["d"]), int(fields["s"]), bool(fields["i"]),
                           float(fields["t"]))
        except (KeyError, TypeError, ValueError):
            raise BadTicket("upload_ticket is not a ticket this server issued") from None
        if self.clock.seconds() - found.issued > self.ttl_s:
            raise BadTicket(f"upload_ticket expired (tickets are valid {self.ttl_s:g} s): "
                            "ask preupload again")
        return found

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._secret, body.encode("ascii"), hashlib.sha256).digest()


def b64url(raw: bytes) -> str:
    """``raw`` as unpadded URL-safe base64 (tickets and build grants)."""
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def unb64url(text: str) -> bytes:
    """The bytes of unpadded URL-safe base64 ``text``; ValueError when it is not."""
    if not text.isascii():
        raise ValueError("not ASCII")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
