"""What state each bot (a slave that runs tasks, ``db.tasks``' ``bots`` rows) is in: the one
rule the /bots page, its JSON twin and the Sampler's ``bots.<state>`` series all follow.

* ``dead``: attached to no master of the farm (master/status.py's ``connected``);
* ``quarantined``: its last poll reported a quarantine (wins over maintenance);
* ``maintenance``: its last poll reported maintenance;
* ``busy``: running a task; ``idle``: none of these.
"""

from __future__ import annotations

from buildfarm.master.status import IStatusSource, slave_statuses

STATE_DEAD = "dead"
STATE_QUARANTINED = "quarantined"
STATE_MAINTENANCE = "maintenance"
STATE_BUSY = "busy"
STATE_IDLE = "idle"
BOT_STATES = (STATE_IDLE, STATE_BUSY, STATE_MAINTENANCE, STATE_QUARANTINED, STATE_DEAD)


def bot_state(bot: dict, connected: bool) -> str:
    """The state of ``bot`` (a ``db.tasks`` bot row) whose slave is ``connected`` or not."""
    if not connected:
        return STATE_DEAD
    if bot.get("quarantined") is not None:
        return STATE_QUARANTINED
    if bot.get("maintenance") is not None:
        return STATE_MAINTENANCE
    return STATE_BUSY if bot.get("task_id") else STATE_IDLE


async def bots_with_states(master: IStatusSource, bots: list[dict]) -> list[tuple[dict, str]]:
    """``[(bot row, state)]`` of ``bots``, their connections read once (``slave_statuses``)."""
    if not bots:
        return []
    statuses = await slave_statuses(master, names=[bot["name"] for bot in bots])
    found = []
    for bot in bots:
        status = statuses.get(bot["name"])
        found.append((bot, bot_state(bot, bool(status is not None and status.connected))))
    return found


async def count_bots_by_state(master: IStatusSource) -> dict[str, int]:
    """``{state: how many bots}`` of every bot the database holds, each of ``BOT_STATES`` present."""
    counts = dict.fromkeys(BOT_STATES, 0)
    for _, state in await bots_with_states(master, await master.db.tasks.get_bots()):
        counts[state] += 1
    return counts
