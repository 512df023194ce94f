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

from buildfarm.master.auth.issuer import HeldIssuer, IssuerUnavailable, sign_credentials

ISSUER_ID = "buildfarm/queue-claims"
ISSUER_SCOPES = ("*",)
ISSUER_DESCRIPTION = ("The Queue's issuer of the temporary credentials of HTTP workers' claims "
                      "(docs/taskcluster.md, HTTP workers); made by the master. Disable it or reset its "
                      "token to end every claim's credentials at once.")
EXPIRY_GRACE_S = 60  # the credentials outlive takenUntil a little: a report racing the expiry

__all__ = ["ISSUER_ID", "ClaimIssuer", "IssuerUnavailable", "credentials_name", "run_scopes"]


def run_scopes(task_id: str, run_id: int) -> list[str]:
    """The scopes a claim's credentials hold for its own run."""
    return [f"queue:reclaim-task:{task_id}/{run_id}", f"queue:resolve-task:{task_id}/{run_id}",
            f"queue:create-artifact:{task_id}/{run_id}"]


def credentials_name(task_id: str, run_id: int, worker_group: str, worker_id: str, taken_until: float) -> str:
    until = format(taken_until, ".3f").rstrip("0").rstrip(".")
    return f"task-client/{task_id}/{run_id}/on/{worker_group}/{worker_id}/until/{until}"


class ClaimIssuer(HeldIssuer):
    """Makes each claim's credentials with the issuer client ``ISSUER_ID`` of ``clients`` (the
    auth service's ``IClientStore``), creating that client the first time."""

    def __init__(self, clients, clock):
        super().__init__(clients, clock, ISSUER_ID, ISSUER_SCOPES, ISSUER_DESCRIPTION)

    def credentials(self, token: str, task_id: str, run_id: int, worker_group: str, worker_id: str,
                    taken_until: float, task_scopes: list[str]) -> dict:
        """The credentials of the claim of run ``run_id`` until ``taken_until`` (``token``: the
        issuer's, read once for all the claims of a call)."""
        scopes = list(dict.fromkeys([*run_scopes(task_id, run_id), *task_scopes]))
        name = credentials_name(task_id, run_id, worker_group, worker_id, taken_until)
        return sign_credentials(ISSUER_ID, token, name, scopes, self.clock.seconds(),
                                taken_until + EXPIRY_GRACE_S)
