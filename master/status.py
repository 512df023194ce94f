"""``SlaveStatus``: the one answer to "what state is this slave in, and how busy is it".

The pages, the JSON API, the SlaveAPI and ``/metrics`` all ask this module; none of them works
a slave's state out on its own.  A status is computed from two sources:

* the BotMaster's live view (``botmaster.slaves``): is the slave attached to *this* master,
  when was it last heard from;
* the database row of ``slaves`` (``connected_masterid``, ``last_connected_at``, ...), which
  every master of a multi-master farm shares: is it attached to *another* master, was it ever
  attached at all; and the SlaveAPI's settings (enabled or disabled).

The rules (docs/api.md, docs/ui.md):

* ``disabled``: disabled through the SlaveAPI; wins over every other state.
* ``busy`` / ``idle``: connected to a master (this one, or another one of the farm according
  to the shared database), with / without running builds.
* ``lost``: attached to some master before, attached to none now.
* ``never seen``: never attached to any master.

``running_builds`` is counted from the database (incomplete builds of the slave, on any master:
``RUNNING_COUNTED_FROM``), so that a slave building for another master is busy here too, and
every surface shows the same number.  A row that names this master while the BotMaster does not
hold the slave (a stale row: this master's detach was not recorded yet) does not make it
connected: the live view is the truth about this master.
"""

from dataclasses import dataclass

from zope.interface import Attribute, Interface

STATE_IDLE = "idle"
STATE_BUSY = "busy"
STATE_DISABLED = "disabled"
STATE_LOST = "lost"
STATE_NEVER_SEEN = "never seen"
SLAVE_STATES = (STATE_IDLE, STATE_BUSY, STATE_DISABLED, STATE_LOST, STATE_NEVER_SEEN)
RUNNING_COUNTED_FROM = "database: incomplete builds of the slave, on any master"
# The most running builds one status read counts (the overview's limit too).
MAX_RUNNING_COUNTED = 1000


class IStatusSource(Interface):
    """The master as a status read sees it (``slave_statuses``, ``one_slave_status``)."""

    db = Attribute("the DBConnector: its slaves, slaveapi (settings) and builds tables")
    config = Attribute("the MasterConfig: its ``slaves`` (the configured names)")
    botmaster = Attribute("the BotMaster: its live view ``slaves`` (name -> BuildSlave) and its "
                          "``missing`` slaves (IMissingSlaves)")
    masterid = Attribute("this master's id in the database (None before start-up)")


@dataclass(frozen=True)
class SlaveStatus:
    """What state one slave is in, and how busy it is."""

    name: str
    state: str
    attached: bool  # attached to this master (the BotMaster holds it)
    connected: bool  # attached to a master of the farm: this one or another one
    masterid: int | None  # the master it is attached to; None when it is not
    running_builds: int  # see RUNNING_COUNTED_FROM
    enabled: bool
    disabled_reason: str | None
    last_seen: float | None  # attached here: its last ping answer or keepalive; else its detach
    ever_attached: bool
    missing: bool = False  # gone longer than its missing_timeout (master/process/missing.py)

    @property
    def elsewhere(self) -> bool:
        """Attached to another master of the farm."""
        return self.connected and not self.attached


def is_attached(live) -> bool:
    """Whether the BotMaster's ``live`` perspective (or None) is an attached slave."""
    return live is not None and live.attached


def attached_count(botmaster) -> int:
    """How many slaves are attached to this master (``/metrics``, the overview's counts)."""
    return sum(1 for live in botmaster.slaves.values() if is_attached(live))


def slave_status(name: str, live, row: dict | None, settings: dict | None, running: int,
                 own_masterid: int | None, missing: bool = False) -> SlaveStatus:
    """The status of ``name`` from its ``live`` perspective (or None), its database ``row`` (or
    None), its SlaveAPI ``settings`` (or None: the defaults, enabled) and its ``running``
    builds counted as ``RUNNING_COUNTED_FROM`` says."""
    row = row or {}
    attached = is_attached(live)
    row_masterid = row.get("connected_masterid")
    elsewhere = row_masterid is not None and row_masterid != own_masterid
    connected = attached or elsewhere
    enabled = settings is None or bool(settings["enabled"])
    ever_attached = attached or row.get("last_connected_at") is not None
    if not enabled:
        state = STATE_DISABLED
    elif connected:
        state = STATE_BUSY if running else STATE_IDLE
    elif ever_attached:
        state = STATE_LOST
    else:
        state = STATE_NEVER_SEEN
    return SlaveStatus(
        name=name, state=state, attached=attached, connected=connected,
        masterid=own_masterid if attached else (row_masterid if elsewhere else None),
        running_builds=running, enabled=enabled,
        disabled_reason=None if settings is None else settings["disabled_reason"],
        last_seen=live.last_seen if attached else row.get("last_disconnected_at"),
        ever_attached=ever_attached, missing=missing and not connected)


async def running_counts(db) -> dict[str, int]:
    """``{slave name: its incomplete builds}`` on every master (one query)."""
    counts: dict[str, int] = {}
    for build in await db.builds.get_all(complete=False, limit=MAX_RUNNING_COUNTED):
        counts[build["slavename"]] = counts.get(build["slavename"], 0) + 1
    return counts


async def slave_statuses(master: IStatusSource, names=None, rows: dict[str, dict] | None = None,
                         settings: dict[str, dict] | None = None) -> dict[str, SlaveStatus]:
    """``{name: SlaveStatus}`` of ``names`` (default: every configured slave and every slave
    the database remembers).  ``rows`` (by name) and ``settings`` (by name) may be passed by a
    caller that has read them already; else they are read here."""
    db = master.db
    if rows is None:
        rows = {row["name"]: row for row in await db.slaves.get_all(with_info=False)}
    if settings is None:
        settings = await db.slaveapi.get_all_settings()
    running = await running_counts(db)
    if names is None:
        names = set(master.config.slaves) | set(rows)
    return {name: slave_status(name, master.botmaster.slaves.get(name), rows.get(name),
                               settings.get(name), running.get(name, 0), master.masterid,
                               master.botmaster.missing.is_missing(name))
            for name in sorted(names)}


async def one_slave_status(master: IStatusSource, name: str, row: dict | None = None,
                           settings: dict | None = None) -> SlaveStatus:
    """The status of one slave (its row and settings read here unless given)."""
    db = master.db
    if row is None:
        row = await db.slaves.get(name)
    if settings is None:
        settings = await db.slaveapi.get_settings(name)
    running = 0
    if row is not None:
        running = await db.builds.count(slaveid=row["slaveid"], complete=False)
    return slave_status(name, master.botmaster.slaves.get(name), row, settings, running,
                        master.masterid, master.botmaster.missing.is_missing(name))
