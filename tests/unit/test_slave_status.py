"""master/status.py: one slave status, and the pages, the JSON API, the SlaveAPI and /metrics
agreeing on it (real database of each backend, real BotMaster and BuildSlave perspectives,
real MasterConfig, task.Clock)."""

import pytest_twisted
from twisted.internet import task
from zope.interface.verify import verifyObject

from buildfarm.master.config import MasterConfig, SlaveConfig
from buildfarm.master.pb.buildslave import BuildSlave
from buildfarm.master.process.botmaster import BotMaster
from buildfarm.master.slaveapi.resources import SlaveAPI
from buildfarm.master.status import (
    STATE_BUSY,
    STATE_DISABLED,
    STATE_IDLE,
    STATE_LOST,
    STATE_NEVER_SEEN,
    IStatusSource,
    attached_count,
    one_slave_status,
    slave_status,
    slave_statuses,
)
from buildfarm.master.www import apidata
from buildfarm.master.www.ui.app import WebUI
from fixtures.memorymaster import start_memory_master

NOW = 50_000.0
OWN = 1
OTHER = 2
NAMES = ("never", "idle", "busy", "lost", "elsewhere")


def live_slave(name: str, clock, last_seen: float) -> BuildSlave:
    """The BotMaster's perspective of a slave that finished its attach sequence."""
    slave = BuildSlave(name, None, clock, 600.0, 30.0)
    slave.attached, slave.last_seen = True, last_seen
    return slave


# -- the rules, one case each ------------------------------------------------------------------

def test_a_slave_never_attached_is_never_seen():
    status = slave_status("s", None, None, None, 0, OWN)
    assert (status.state, status.connected, status.attached, status.masterid) == (
        STATE_NEVER_SEEN, False, False, None)


def test_an_attached_slave_is_idle_or_busy_by_its_running_builds():
    clock = task.Clock()
    row = {"connected_masterid": OWN, "last_connected_at": 10.0, "last_disconnected_at": None}
    idle = slave_status("s", live_slave("s", clock, 40.0), row, None, 0, OWN)
    busy = slave_status("s", live_slave("s", clock, 40.0), row, None, 2, OWN)
    assert (idle.state, idle.attached, idle.connected, idle.masterid, idle.last_seen) == (
        STATE_IDLE, True, True, OWN, 40.0)
    assert (busy.state, busy.running_builds) == (STATE_BUSY, 2)


def test_a_slave_attached_before_and_to_no_master_now_is_lost_since_its_detach():
    row = {"connected_masterid": None, "last_connected_at": 10.0, "last_disconnected_at": 30.0}
    status = slave_status("s", None, row, None, 0, OWN)
    assert (status.state, status.connected, status.last_seen) == (STATE_LOST, False, 30.0)


def test_a_slave_attached_to_another_master_is_connected_there_not_lost():
    row = {"connected_masterid": OTHER, "last_connected_at": 10.0, "last_disconnected_at": None}
    status = slave_status("s", None, row, None, 1, OWN)
    assert (status.state, status.connected, status.attached, status.masterid, status.elsewhere) == (
        STATE_BUSY, True, False, OTHER, True)


def test_a_row_naming_this_master_without_the_live_slave_is_not_connected():
    row = {"connected_masterid": OWN, "last_connected_at": 10.0, "last_disconnected_at": None}
    status = slave_status("s", None, row, None, 0, OWN)
    assert (status.state, status.connected, status.masterid) == (STATE_LOST, False, None)


def test_disabled_wins_over_every_other_state():
    settings = {"enabled": False, "disabled_reason": "broken disk"}
    status = slave_status("s", live_slave("s", task.Clock(), 1.0), None, settings, 3, OWN)
    assert (status.state, status.attached, status.disabled_reason) == (STATE_DISABLED, True, "broken disk")


def test_a_slave_still_attaching_or_detaching_is_not_counted_attached():
    botmaster = BotMaster(None)
    clock = task.Clock()
    botmaster.slaves = {"a": live_slave("a", clock, 1.0), "b": BuildSlave("b", None, clock, 600.0, 30.0)}
    assert attached_count(botmaster) == 1


# -- every surface agrees ----------------------------------------------------------------------

class InMemoryMaster:
    """What master/status.py reads of the master: a real database, BotMaster and config (the
    surfaces themselves run on a real master in memory: `five_slaves_on_a_memory_master`)."""

    def __init__(self, db):
        self.db = db
        self.reactor = task.Clock()
        self.reactor.advance(NOW)
        self.config = MasterConfig(filename="master.cfg", title="Status farm",
                                   slaves={name: SlaveConfig(name, "pw") for name in NAMES})
        self.botmaster = BotMaster(self)
        self.masterid: int | None = None


async def five_slaves(db) -> InMemoryMaster:
    """never attached; attached idle; attached building; lost; attached to another master
    (building for it)."""
    master = InMemoryMaster(db)
    master.masterid = await db.masters.find_or_create("m1")
    other = await db.masters.find_or_create("m2")
    ids = {}
    for name, masterid in (("idle", master.masterid), ("busy", master.masterid),
                           ("lost", master.masterid), ("elsewhere", other)):
        ids[name] = await db.slaves.attached(name, masterid, {}, "1.0", 100.0)
    await db.slaves.detached("lost", master.masterid, 900.0)
    builderid = await db.builders.find_or_create("linux")
    for name, masterid in (("busy", master.masterid), ("elsewhere", other), ("lost", master.masterid)):
        brid = await db.buildrequests.add(builderid, "test", {}, 1000.0)
        await db.buildrequests.claim(brid, masterid, 1001.0)
        buildid, _ = await db.builds.add(builderid, brid, ids[name], masterid, 1002.0)
        if name == "lost":  # it finished before the slave left
            await db.builds.finish(buildid, 0, 1100.0, "done")
    for name in ("idle", "busy"):
        master.botmaster.slaves[name] = live_slave(name, master.reactor, NOW - 5)
    return master


EXPECTED = {  # name: (state, connected, attached, running builds, master name)
    "never": (STATE_NEVER_SEEN, False, False, 0, None),
    "idle": (STATE_IDLE, True, True, 0, "m1"),
    "busy": (STATE_BUSY, True, True, 1, "m1"),
    "lost": (STATE_LOST, False, False, 0, None),
    "elsewhere": (STATE_BUSY, True, False, 1, "m2"),
}


@pytest_twisted.ensureDeferred
async def test_the_status_module_answers_the_five_cases(db):
    master = await five_slaves(db)
    statuses = await slave_statuses(master)
    masters = {master.masterid: "m1", master.masterid + 1: "m2"}
    got = {name: (s.state, s.connected, s.attached, s.running_builds, masters.get(s.masterid))
           for name, s in statuses.items()}
    assert got == EXPECTED
    for name in NAMES:  # one slave at a time, as the detail pages ask
        assert await one_slave_status(master, name) == statuses[name]


# The five slaves configured on a real master (builder linux takes them all).
FIVE_SLAVES_CFG = """\
from buildfarm.master.plugins import slaves, steps, util
c = BuildmasterConfig = {}
c['title'] = 'Status farm'
c['slaves'] = [slaves.BuildSlave(name, 'pw') for name in %r]
c['protocols'] = {'pb': {'port': 9989}}
c['builders'] = [util.BuilderConfig(name='linux', slavenames=[s.name for s in c['slaves']],
                 factory=util.BuildFactory([steps.ShellCommand(command=['make'])]))]
c['www'] = {'port': 8010}
c['db'] = {'db_url': %r}
"""


async def five_slaves_on_a_memory_master(tmp_path, db_url):
    """The cases of `five_slaves` on a real master in memory: idle and busy attached to its
    BotMaster through the real attach sequence, the others' history in its database."""
    from fixtures.memorymaster import attach_slave, start_memory_master

    master = await start_memory_master(tmp_path, FIVE_SLAVES_CFG % (NAMES, db_url), now=NOW - 5)
    db, own = master.db, master.masterid
    other = await db.masters.find_or_create("m2")
    for name in ("idle", "busy"):
        await attach_slave(master, name)
    ids = {name: (await db.slaves.get(name))["slaveid"] for name in ("idle", "busy")}
    for name, masterid in (("lost", own), ("elsewhere", other)):
        ids[name] = await db.slaves.attached(name, masterid, {}, "1.0", 100.0)
    await db.slaves.detached("lost", own, 900.0)
    builderid = master.botmaster.builders["linux"].builderid
    for name, masterid in (("busy", own), ("elsewhere", other), ("lost", own)):
        brid = await db.buildrequests.add(builderid, "test", {}, 1000.0)
        await db.buildrequests.claim(brid, masterid, 1001.0)
        buildid, _ = await db.builds.add(builderid, brid, ids[name], masterid, 1002.0)
        if name == "lost":  # it finished before the slave left
            await db.builds.finish(buildid, 0, 1100.0, "done")
    master.reactor.advance(5)
    return master


@pytest_twisted.ensureDeferred
async def test_the_json_api_the_pages_the_slaveapi_and_metrics_agree(tmp_path, db_url):
    master = await five_slaves_on_a_memory_master(tmp_path, db_url)
    try:
        api = {s["name"]: s for s in await apidata.slave_summaries(master)}
        ui = WebUI(master)
        # /slaves/<name>
        pages = {name: ui.slave_summary(await one_slave_status(master, name)) for name in NAMES}
        overview = await apidata.overview(master)  # the JSON API's and the overview page's
        listed = {s["name"]: s for s in overview["slaves"]}
        slaveapi = {s["name"]: s for s in await SlaveAPI(master.slaveapi)._slave_summaries()}
        master_names = {"m1": master.name_in_database, "m2": "m2", None: None}
        for name, (state, connected, attached, running, master_name) in EXPECTED.items():
            assert (api[name]["state"], api[name]["connected"], api[name]["attached"],
                    api[name]["running_builds"]) == (state, connected, attached, running), name
            assert (pages[name]["state"], pages[name]["connected"], pages[name]["attached"],
                    pages[name]["running"]) == (state, connected, attached, running), name
            assert (slaveapi[name]["connected"], slaveapi[name]["master"]) == (
                connected, master_names[master_name]), name
            assert (listed[name]["state"], listed[name]["running_builds"]) == (state, running), name
            detail = await apidata.slave_detail(master, name)
            assert (detail["state"], detail["connected"], detail["running_builds"]) == (
                state, connected, running), name
        assert overview["slave_counts"] == {"idle": 1, "busy": 2, "disabled": 0, "lost": 1, "never seen": 1,
                                            "attached": 2}
        scraped = (await master.metrics.render(master)).decode()
        assert "buildfarm_slaves_attached 2.0" in scraped
    finally:
        await master.stopService()


@pytest_twisted.ensureDeferred
async def test_the_json_api_filters_never_seen_slaves_apart_from_lost_ones(tmp_path, db_url):
    master = await five_slaves_on_a_memory_master(tmp_path, db_url)
    try:
        summaries = await apidata.slave_summaries(master)
    finally:
        await master.stopService()
    assert [s["name"] for s in summaries if s["state"] == STATE_NEVER_SEEN] == ["never"]
    assert [s["name"] for s in summaries if s["state"] == STATE_LOST] == ["lost"]
    assert STATE_NEVER_SEEN in apidata.SLAVE_STATES



# -- the seam ----------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_the_real_master_and_this_files_double_provide_what_a_status_read_uses(db, tmp_path):
    master = await start_memory_master(tmp_path)
    try:
        assert verifyObject(IStatusSource, master)
    finally:
        await master.stopService()
    assert verifyObject(IStatusSource, InMemoryMaster(db), tentative=True)
