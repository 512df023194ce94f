"""Upload tickets: signed, bound to one item, expiring (master/cas/tickets.py)."""

import base64
import json

import pytest
from twisted.internet.task import Clock

from buildfarm.master.cas.tickets import TICKET_TTL_S, BadTicket, Ticket, TicketSigner

DIGEST = "a" * 40
OTHER = "b" * 40


def signer(secret=b"s" * 32, clock=None):
    return TicketSigner(secret, clock or Clock())


def test_a_ticket_names_the_item_it_was_issued_for():
    s = signer()
    assert s.check(s.issue("default-gzip", DIGEST, 12, True)) == Ticket("default-gzip", DIGEST, 12, True, 0.0)


def test_a_ticket_of_another_secret_is_refused():
    with pytest.raises(BadTicket, match="signature"):
        signer(b"t" * 32).check(signer().issue("default-gzip", DIGEST, 12, False))


def rebound(ticket: str, **changes) -> str:
    body, mac = ticket.split(".")
    fields = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    fields.update(changes)
    raw = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + mac


@pytest.mark.parametrize("changes", [{"d": OTHER}, {"s": 13}, {"n": "sha256-gzip"}, {"i": True}, {"t": 10}])
def test_a_ticket_rebound_to_another_item_is_refused(changes):
    s = signer()
    with pytest.raises(BadTicket, match="signature"):
        s.check(rebound(s.issue("default-gzip", DIGEST, 12, False), **changes))


@pytest.mark.parametrize("forged", ["", "x", "a.b.c", "!!!.???", "e30.AAAA", None, 12, "é.é", "x" * 2000])
def test_a_forged_ticket_is_refused(forged):
    with pytest.raises(BadTicket):
        signer().check(forged)


def test_a_ticket_expires():
    clock = Clock()
    s = signer(clock=clock)
    ticket = s.issue("default-gzip", DIGEST, 1, False)
    clock.advance(TICKET_TTL_S)
    assert s.check(ticket).digest == DIGEST
    clock.advance(1)
    with pytest.raises(BadTicket, match="expired"):
        s.check(ticket)
