"""``ClaimIssuer``: the temporary credentials of each HTTP worker's claim, as Taskcluster's queue
makes them (its task-creds.js), issued by the master-held client ``ISSUER_ID``.

The credentials are named ``task-client/<taskId>/<runId>/on/<workerGroup>/<workerId>/until/
<takenUntil>`` (POSIX seconds), scoped to the task's ``scopes`` plus
``queue:reclaim-task:<taskId>/<runId>``, ``queue:resolve-task:<taskId>/<runId>`` and
``queue:create-artifact:<taskId>/<runId>``, and expire ``EXPIRY_GRACE_S`` after ``takenUntil``.
The master's Hawk verifier (master/auth/hawk.py, tempcreds.py) checks them like any other.

The issuer is a database client (master/auth/clients.py) that the master creates on its first
claim, with the scope ``*`` (a task may carry any scope its creator held) and a random access
token kept encrypted under the clients key, so that every master of the database signs with the
same token.  An admin may disable it or reset its token (Auth API): every claim's credentials
then stop working at once, and a disabled issuer makes claimWork answer 503.
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

ISSUER_ID = "buildfarm/queue-claims"
ISSUER_SCOPES = ("*",)
ISSUER_DESCRIPTION = ("The Queue's issuer of the temporary credentials of HTTP workers' claims "
                      "(docs/taskcluster.md, HTTP workers); made by the master. Disable it or reset its "
                      "token to end every claim's credentials at once.")
EXPIRY_GRACE_S = 60  # the credentials outlive takenUntil a little: a report racing the expiry
SEED_BYTES = 33  # 44 characters of URL-safe base64, the certificate's seed


class IssuerUnavailable(Exception):
    """The issuer client is disabled or expired: no claim can be given credentials (503)."""


def run_scopes(task_id: str, run_id: int) -> list[str]:
    """The scopes a claim's credentials hold for its own run."""
    return [f"queue:reclaim-task:{task_id}/{run_id}", f"queue:resolve-task:{task_id}/{run_id}",
            f"queue:create-artifact:{task_id}/{run_id}"]


def credentials_name(task_id: str, run_id: int, worker_group: str, worker_id: str, taken_until: float) -> str:
    until = format(taken_until, ".3f").rstrip("0").rstrip(".")
    return f"task-client/{task_id}/{run_id}/on/{worker_group}/{worker_id}/until/{until}"


def make_credentials(issuer_id: str, issuer_token: str, client_id: str, scopes: list[str], start_s: float,
                     expiry_s: float, seed: str) -> dict:
    """Named temporary credentials ``{clientId, accessToken, certificate}`` (the certificate as
    JSON text), signed as ``taskcluster.createTemporaryCredentials`` signs them."""
    cert = Certificate(CERTIFICATE_VERSION, seed, int(start_s * 1000), int(expiry_s * 1000), tuple(scopes),
                       "", issuer_id)
    signature = base64.b64encode(hmac.new(issuer_token.encode(), signed_text(cert, client_id),
                                          hashlib.sha256).digest()).decode()
    certificate = {"version": cert.version, "scopes": list(cert.scopes), "start": cert.start,
                   "expiry": cert.expiry, "seed": seed, "signature": signature, "issuer": issuer_id}
    return {"clientId": client_id, "accessToken": temporary_token(cert, issuer_token),
            "certificate": json.dumps(certificate, separators=(",", ":"))}


class ClaimIssuer:
    """Makes each claim's credentials with the issuer client of ``clients`` (the auth
    service's ``IClientStore``), creating that client the first time."""

    def __init__(self, clients, clock):
        self.clients = clients
        self.clock = clock

    async def issuer_token(self) -> str:
        """The issuer's access token; ``IssuerUnavailable`` when it is disabled or expired."""
        found = await self.clients.credentials(ISSUER_ID)
        if found is None:
            try:
                await self.clients.create(ISSUER_ID, NEVER, ISSUER_DESCRIPTION, list(ISSUER_SCOPES))
            except ClientExists:  # another master made it at the same time
                pass
            except ReadOnlyClient as e:  # no database clients on this master
                raise IssuerUnavailable(f"the Queue cannot make its issuer client {ISSUER_ID!r}: "
                                        f"{e}") from None
            found = await self.clients.credentials(ISSUER_ID)
        if found is None:
            raise IssuerUnavailable(f"the Queue's issuer client {ISSUER_ID!r} cannot be read (the "
                                    "clients key differs from the one that sealed its token?)")
        client, token = found
        if client.disabled or client.expired(self.clock.seconds()):
            raise IssuerUnavailable(f"the Queue's issuer client {ISSUER_ID!r} is disabled or expired: no "
                                    "claim can be given credentials (enable it with the Auth API's "
                                    "enableClient)")
        return token

    def credentials(self, token: str, task_id: str, run_id: int, worker_group: str, worker_id: str,
                    taken_until: float, task_scopes: list[str]) -> dict:
        """The credentials of the claim of run ``run_id`` until ``taken_until``."""
        scopes = list(dict.fromkeys([*run_scopes(task_id, run_id), *task_scopes]))
        name = credentials_name(task_id, run_id, worker_group, worker_id, taken_until)
        seed = base64.urlsafe_b64encode(secrets.token_bytes(SEED_BYTES)).decode()
        return make_credentials(ISSUER_ID, token, name, scopes, self.clock.seconds(),
                                taken_until + EXPIRY_GRACE_S, seed)
