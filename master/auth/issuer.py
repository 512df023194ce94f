"""``HeldIssuer``: temporary credentials (Taskcluster's format, verified by tempcreds.py) that the
master makes and hands out as one of its own clients, as Taskcluster's services do with theirs:
the Queue's claim credentials (master/queue/claimcreds.py) and its artifact upload and download
credentials (master/objectservice/issuer.py).

The issuer is a database client (clients.py), made on first use with its scopes and a random
access token stored encrypted like every database client's, so every master of the database
signs and checks with the same token.  It shows in ``listClients``; disabling it or resetting
its token ends every credential it issued, at once (hawk.py checks the issuer on each request),
and while it is disabled or expired ``IssuerUnavailable`` says so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

from buildfarm.master.auth.clients import NEVER
from buildfarm.master.auth.interfaces import ClientExists, ReadOnlyClient
from buildfarm.master.auth.tempcreds import CERTIFICATE_VERSION, Certificate, signed_text, temporary_token

SEED_BYTES = 33  # 44 characters of URL-safe base64, the certificate's seed


class IssuerUnavailable(Exception):
    """The issuer client cannot sign: disabled, expired, unreadable or impossible to make."""


def sign_credentials(issuer_id: str, issuer_token: str, client_id: str, scopes: list[str], start_s: float,
                     expiry_s: float) -> dict:
    """Named temporary credentials ``{clientId, accessToken, certificate}`` (the certificate as
    JSON text) for ``client_id``, signed as ``taskcluster.createTemporaryCredentials`` signs them."""
    seed = base64.urlsafe_b64encode(secrets.token_bytes(SEED_BYTES)).decode()
    cert = Certificate(CERTIFICATE_VERSION, seed, int(start_s * 1000), int(expiry_s * 1000), tuple(scopes),
                       "", issuer_id)
    signature = base64.b64encode(hmac.new(issuer_token.encode(), signed_text(cert, client_id),
                                          hashlib.sha256).digest()).decode()
    certificate = {"version": cert.version, "scopes": list(cert.scopes), "start": cert.start,
                   "expiry": cert.expiry, "seed": seed, "signature": signature, "issuer": issuer_id}
    return {"clientId": client_id, "accessToken": temporary_token(cert, issuer_token),
            "certificate": json.dumps(certificate, separators=(",", ":"))}


class HeldIssuer:
    """The client ``issuer_id`` of ``clients`` (the auth service's ``IClientStore``), holding
    ``scopes``, made the first time it is needed; time from ``clock``."""

    def __init__(self, clients, clock, issuer_id: str, scopes: tuple[str, ...], description: str):
        self.clients = clients
        self.clock = clock
        self.issuer_id = issuer_id
        self.scopes = scopes
        self.description = description

    async def token(self) -> str:
        """The issuer's access token; ``IssuerUnavailable`` when it cannot sign."""
        found = await self.clients.credentials(self.issuer_id)
        if found is None:
            try:
                await self.clients.create(self.issuer_id, NEVER, self.description, list(self.scopes))
            except ClientExists:  # another call or master made it at the same time
                pass
            except ReadOnlyClient as e:  # no database clients on this master
                raise IssuerUnavailable(f"the master cannot make its issuer client {self.issuer_id!r}: "
                                        f"{e}") from None
            found = await self.clients.credentials(self.issuer_id)
        if found is None:
            raise IssuerUnavailable(f"the issuer client {self.issuer_id!r} cannot be read (the clients "
                                    "key differs from the one that sealed its token?)")
        client, token = found
        if client.disabled or client.expired(self.clock.seconds()):
            raise IssuerUnavailable(f"the issuer client {self.issuer_id!r} is disabled or expired: it "
                                    "gives no credentials (enable it with the Auth API's enableClient)")
        return token

    async def issue(self, client_id: str, scopes: list[str], start_s: float, expiry_s: float,
                    token: str | None = None) -> dict:
        """Credentials named ``client_id`` holding ``scopes`` from ``start_s`` to ``expiry_s``
        (``token``: the issuer's, when the caller has it already)."""
        if token is None:
            token = await self.token()
        return sign_credentials(self.issuer_id, token, client_id, scopes, start_s, expiry_s)
