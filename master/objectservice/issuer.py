"""``CredentialsIssuer``: temporary credentials (Taskcluster's format, master/auth/tempcreds.py)
made by a client the master holds, for the Queue to hand out: an uploader's credentials for one
object (``createArtifact``) and a reader's for one object (``artifact``), as Taskcluster's Queue
makes them with its own client.

The issuer is the database client ``ISSUER_ID``, made on first use with ``ISSUER_SCOPES`` and a
random access token (stored encrypted like every database client's), so every master of the
database signs and checks with the same token.  It shows in ``listClients``; disabling it or
resetting its token ends every credential it issued, at once (master/auth/hawk.py checks the
issuer on each request).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

from buildfarm.master.auth.interfaces import ClientExists
from buildfarm.master.auth.tempcreds import CERTIFICATE_VERSION, Certificate, signed_text, temporary_token

ISSUER_ID = "static/buildfarm/object-credentials"
ISSUER_SCOPES = ("object:upload:*", "object:download:*", "auth:create-client:artifact-upload/*",
                 "auth:create-client:artifact-download/*")
ISSUER_EXPIRES = 32503680000.0  # 3000-01-01: the issuer itself does not expire
SEED_BYTES = 33  # 44 characters of URL-safe base64, the seed's length
START_SLACK_MS = 60_000  # a credential starts a minute back, for clocks behind the master's


class CredentialsIssuer:
    """Issues temporary credentials as ``ISSUER_ID`` of ``clients`` (the auth service's
    ``ClientStore``), on ``clock``'s time."""

    def __init__(self, clients, clock):
        self.clients = clients
        self.clock = clock

    async def _issuer_token(self) -> str:
        found = await self.clients.credentials(ISSUER_ID)
        if found is None:
            try:
                await self.clients.create(ISSUER_ID, ISSUER_EXPIRES, "the master's issuer of the Queue's "
                                          "artifact upload and download credentials (the Object service)",
                                          list(ISSUER_SCOPES))
            except ClientExists:  # made at the same time by another call or master
                pass
            found = await self.clients.credentials(ISSUER_ID)
        return found[1]

    async def issue(self, client_id: str, scopes: list[str], expiry: float) -> dict:
        """Named temporary credentials ``client_id`` holding ``scopes`` until ``expiry``
        (seconds): ``{clientId, accessToken, certificate}``, as the client's
        ``credentials`` option takes them."""
        token = await self._issuer_token()
        now_ms = int(self.clock.seconds() * 1000)
        seed = base64.urlsafe_b64encode(secrets.token_bytes(SEED_BYTES)).decode()
        cert = Certificate(CERTIFICATE_VERSION, seed, now_ms - START_SLACK_MS, int(expiry * 1000),
                           tuple(scopes), "", ISSUER_ID)
        signature = base64.b64encode(hmac.new(token.encode(), signed_text(cert, client_id),
                                              hashlib.sha256).digest()).decode()
        certificate = {"version": cert.version, "scopes": list(cert.scopes), "start": cert.start,
                       "expiry": cert.expiry, "seed": seed, "signature": signature, "issuer": ISSUER_ID}
        return {"clientId": client_id, "accessToken": temporary_token(cert, token),
                "certificate": json.dumps(certificate, separators=(",", ":"))}

