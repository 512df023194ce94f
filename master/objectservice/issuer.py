"""``CredentialsIssuer``: the Queue's temporary credentials for one object, an uploader's
(``createArtifact``) or a reader's (``artifact``), as Taskcluster's Queue makes them with its own
client: made by the master-held client ``ISSUER_ID`` (master/auth/issuer.py ``HeldIssuer``; it
shows in ``listClients``, and disabling it or resetting its token ends every credential it
issued, at once).
"""

from __future__ import annotations

from buildfarm.master.auth.issuer import HeldIssuer

ISSUER_ID = "static/buildfarm/object-credentials"
ISSUER_SCOPES = ("object:upload:*", "object:download:*", "auth:create-client:artifact-upload/*",
                 "auth:create-client:artifact-download/*")
ISSUER_DESCRIPTION = ("the master's issuer of the Queue's artifact upload and download credentials (the "
                      "Object service)")
START_SLACK_S = 60  # a credential starts a minute back, for clocks behind the master's


class CredentialsIssuer:
    """Issues temporary credentials as ``ISSUER_ID`` of ``clients`` (the auth service's
    ``ClientStore``), on ``clock``'s time."""

    def __init__(self, clients, clock):
        self.clock = clock
        self.held = HeldIssuer(clients, clock, ISSUER_ID, ISSUER_SCOPES, ISSUER_DESCRIPTION)

    async def issue(self, client_id: str, scopes: list[str], expiry: float) -> dict:
        """Named temporary credentials ``client_id`` holding ``scopes`` until ``expiry``
        (seconds): ``{clientId, accessToken, certificate}``, as the client's
        ``credentials`` option takes them."""
        return await self.held.issue(client_id, scopes, self.clock.seconds() - START_SLACK_S, expiry)
