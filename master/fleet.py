"""What the master knows of fleet actions (the SlaveAPI) outside ``master/slaveapi/``.

The SlaveAPI (``master/slaveapi/``) runs actions on slaves; the database stores their
results (``db/slaveapi.py``), the pages and the JSON API show them (``www/``) and
``/metrics`` counts them (``master/metrics.py``).  Those packages may not import the
SlaveAPI (docs/architecture.md, "Layering"), so the little they share with it lives here,
one floor down: the states of an action with their names, the scopes that guard actions,
and the error an action's arguments raise.  This module imports nothing of the master.
"""

from enum import IntEnum


class ActionState(IntEnum):
    """Where a requested fleet action is: PENDING, then RUNNING, then SUCCESS or FAILURE.

    The numbers are the wire contract of the original SlaveAPI (its ``state`` field) and
    what the ``slaveapi_results.state`` column holds.  They are *not* build results
    (``buildfarm.common.results``, where SUCCESS is 0): always write ``ActionState.SUCCESS``.
    """

    PENDING = 0
    RUNNING = 1
    SUCCESS = 2
    FAILURE = 3

    @property
    def label(self) -> str:
        """The state's name as the API, the pages and the audit trail show it: ``"success"``."""
        return self.name.lower()


# state number -> its label, for rows read from the database (plain ints).
STATE_NAMES = {state: state.label for state in ActionState}
UNFINISHED = (ActionState.PENDING, ActionState.RUNNING)

# A GET of the SlaveAPI, and the SlaveAPI part of the pages and the JSON API, need this scope.
SLAVEAPI_READ_SCOPE = "slaveapi:read"


def action_scope(action: str, slave: str) -> str:
    """The scope a request of ``action`` on ``slave`` needs."""
    return f"slaveapi:{action}:{slave}"


class BadArgument(Exception):
    """An action argument that cannot be accepted (answered as 400, naming the field)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
