"""``ActionResult``: the state and story of one action requested of a slave."""

from dataclasses import dataclass, field

from buildfarm.master.fleet import ActionState
from buildfarm.master.slaveapi.compat import original_text


@dataclass
class ActionResult:
    """One requested action: PENDING, then RUNNING, then SUCCESS or FAILURE.

    ``text`` says what was tried and what happened, one line per step (the API answers it as
    ``story``, and in ``text`` what the original SlaveAPI did: compat.original_text); ``data``
    is what the action found out, as JSON (an uptime, a last activity), else None; timestamps
    are integer epoch seconds, 0 until reached.
    """

    requestid: int
    slave: str
    action: str
    state: int = ActionState.PENDING
    text: str = ""
    data: object = None
    args: dict = field(default_factory=dict)
    requested_by: str = ""
    requested_from: str = ""
    request_timestamp: int = 0
    start_timestamp: int = 0
    finish_timestamp: int = 0

    @classmethod
    def from_row(cls, row: dict) -> "ActionResult":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in row.items() if k in names})

    @property
    def finished(self) -> bool:
        return self.state in (ActionState.SUCCESS, ActionState.FAILURE)

    def to_dict(self) -> dict:
        """What the API answers for this result: ``text`` as the original SlaveAPI had it
        (compat.original_text), our story of the action in ``story``, its findings in ``data``."""
        return {
            "requestid": self.requestid,
            "state": self.state,
            "text": original_text(self.action, self.state, self.text, self.data),
            "story": self.text,
            "data": self.data,
            "request_timestamp": self.request_timestamp,
            "start_timestamp": self.start_timestamp,
            "finish_timestamp": self.finish_timestamp,
            "requested_by": self.requested_by,
            "requested_from": self.requested_from,
        }


def dictify_results(results) -> dict:
    """``{slave: {action: {requestid: result dict}}}`` (request ids as JSON keys: strings)."""
    tree: dict = {}
    for result in results:
        by_action = tree.setdefault(result.slave, {}).setdefault(result.action, {})
        by_action[str(result.requestid)] = result.to_dict()
    return tree
