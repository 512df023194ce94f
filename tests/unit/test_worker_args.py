"""Worker keyword arguments with effect: ``keepalive_interval`` (that slave's ping interval,
over an in-memory PB connection), ``missing_timeout`` and ``notify_on_missing`` (a real master
in memory marks a slave gone that long missing: status, API field, log line, event)."""

import dataclasses
import json

import pytest
import pytest_twisted
from twisted.logger import capturedLogs, formatEvent
from zope.interface.verify import verifyObject

from buildfarm.master.config import SlaveConfig, Worker
from buildfarm.master.process.interfaces import IMissingSlaves
from buildfarm.master.process.missing import SlaveMissing
from buildfarm.master.status import one_slave_status
from buildfarm.master.www.api import JSONAPI
from fixtures import pbclient
from fixtures.memoryhttp import render
from fixtures.memorymaster import attach_slave, eventually, memory_master_fixture
from fixtures.pbclient import PING_INTERVAL_S, RecordingBot, log_in

clock, pb_master = pbclient.clock, pbclient.master  # the slave port's fixtures

# -- keepalive_interval ------------------------------------------------------------------------

KEEPALIVE_S = 10.0


def pings(bot: RecordingBot) -> int:
    return bot.calls.count(("print", "ping"))


def with_slaves(config, **slaves):
    return dataclasses.replace(config, slaves={**config.slaves, **slaves})


def test_keepalive_interval_is_that_slaves_ping_interval(pb_master, clock):
    fast_slave = Worker("bs1", "pass", keepalive_interval=KEEPALIVE_S)
    pb_master.config = with_slaves(pb_master.config, bs1=fast_slave)
    fast, default = RecordingBot(), RecordingBot()
    fast_conn, default_conn = log_in(pb_master, fast), log_in(pb_master, default, name="bs2")
    for _ in range(3):
        clock.advance(KEEPALIVE_S)
        fast_conn.pump.flush()
        default_conn.pump.flush()
    assert pings(fast) == 3 and pings(default) == 0  # bs2: c['protocols']['pb']['ping_interval']
    clock.advance(PING_INTERVAL_S - 3 * KEEPALIVE_S)
    default_conn.pump.flush()
    assert pings(default) == 1


@pytest_twisted.ensureDeferred
async def test_a_reconfig_changes_an_attached_slaves_ping_interval(pb_master, clock):
    bot = RecordingBot()
    conn = log_in(pb_master, bot)
    await pb_master.botmaster.reconfigService(
        with_slaves(pb_master.config, bs1=Worker("bs1", "pass", keepalive_interval=KEEPALIVE_S)))
    clock.advance(PING_INTERVAL_S)  # the ping already due keeps its time
    conn.pump.flush()
    assert pings(bot) == 1
    clock.advance(KEEPALIVE_S)  # then the new interval
    conn.pump.flush()
    assert pings(bot) == 2


@pytest.mark.parametrize("kwargs, words", [
    ({"keepalive_interval": 0}, "keepalive_interval must be a positive number"),
    ({"keepalive_interval": "1m"}, "keepalive_interval must be a positive number"),
    ({"missing_timeout": -1}, "missing_timeout must be a number"),
    ({"notify_on_missing": [3]}, "notify_on_missing must be an address"),
    ({"max_builds": 0}, "max_builds must be a positive integer"),
])
def test_bad_worker_arguments_are_config_problems_naming_worker(kwargs, words):
    problems = Worker("bs1", "pass", **kwargs).config_problems()
    assert len(problems) == 1 and words in problems[0] and problems[0].startswith("Worker 'bs1'")


def test_notify_on_missing_takes_one_address_or_a_list():
    assert SlaveConfig("a", "p", notify_on_missing="ops@example.org").notify_on_missing == ["ops@example.org"]
    assert SlaveConfig("a", "p").notify_on_missing == [] and SlaveConfig("a", "p").missing_timeout == 3600.0
    assert Worker("a", "p", missing_timeout=None, keepalive_interval=5).config_problems() == []


# -- missing_timeout and notify_on_missing -------------------------------------------------------

MISSING_S = 300
MISSING_CFG = """\
from buildfarm.master.plugins import worker, schedulers, steps, util
c = BuildmasterConfig = {}
c['workers'] = [worker.Worker('bs1', 'pass', missing_timeout=%d, notify_on_missing='ops@example.org'),
                worker.Worker('bs2', 'pass', missing_timeout=0)]
c['protocols'] = {'pb': {'port': 9989}}
c['builders'] = [util.BuilderConfig(name='linux', workernames=['bs1', 'bs2'],
                 factory=util.BuildFactory([steps.ShellCommand(command=['true'])]))]
c['www'] = {'port': 8010}
c['db'] = {'db_url': 'sqlite:///state.sqlite'}
c['users'] = [util.User('admin', password='adm1n', scopes=['*'])]
""" % MISSING_S

master = memory_master_fixture(MISSING_CFG, now=1000.0)


async def is_missing(master, name) -> bool:
    return (await one_slave_status(master, name)).missing


@pytest_twisted.ensureDeferred
async def test_a_slave_gone_longer_than_missing_timeout_is_missing_until_it_attaches(master):
    missing = master.botmaster.missing
    verifyObject(IMissingSlaves, missing)
    events: list[SlaveMissing] = []
    missing.subscribe(events.append)
    connection = await attach_slave(master, "bs1")
    master.reactor.advance(50)
    connection.drop()
    master.reactor.advance(MISSING_S - 1)
    assert not missing.is_missing("bs1")
    with capturedLogs() as logs:
        master.reactor.advance(1)
        await eventually(lambda: is_missing(master, "bs1"), "bs1 to be missing")
    assert events == [SlaveMissing("bs1", 1050.0, MISSING_S, ("ops@example.org",))]
    logged = [formatEvent(e) for e in logs]
    assert any("slave bs1 is missing: gone for 300 s" in line and "ops@example.org" in line
               for line in logged)
    response = await render(JSONAPI(master).resource(), "GET", "/api/v1/slaves/bs1",
                            headers={"authorization": "Basic YWRtaW46YWRtMW4="})
    assert json.loads(response.body)["missing"] is True
    await attach_slave(master, "bs1")
    assert not missing.is_missing("bs1") and not await is_missing(master, "bs1")
    assert len(events) == 1


@pytest_twisted.ensureDeferred
async def test_a_slave_that_never_attached_is_missing_after_the_timeout_from_start(master):
    events = []
    master.botmaster.missing.subscribe(events.append)
    master.reactor.advance(MISSING_S)
    await eventually(lambda: is_missing(master, "bs1"), "bs1 to be missing")
    assert [e.gone_since for e in events] == [1000.0]
    master.reactor.advance(10 * MISSING_S)
    assert not master.botmaster.missing.is_missing("bs2")  # missing_timeout=0: never missing
    assert len(events) == 1  # told once


@pytest_twisted.ensureDeferred
async def test_without_a_listener_the_log_says_nobody_was_told_and_unsubscribe_works(master):
    events = []
    unsubscribe = master.botmaster.missing.subscribe(events.append)
    unsubscribe()
    with capturedLogs() as logs:
        master.reactor.advance(MISSING_S)
        await eventually(lambda: is_missing(master, "bs1"), "bs1 to be missing")
    assert events == []
    assert any("no reporter listens, so nobody was told" in formatEvent(e) for e in logs)


@pytest_twisted.ensureDeferred
async def test_a_slave_attached_to_another_master_is_not_missing(master):
    other = await master.db.masters.find_or_create("other-master")
    await master.db.slaves.attached("bs1", other, {}, "1.0", 1000.0)
    looks = []
    original = master.db.slaves.get

    async def get(name):
        row = await original(name)
        looks.append(name)  # the missing check goes on from here, in this same turn
        return row

    master.db.slaves.get = get
    for look in (1, 2):  # looked again one timeout later
        master.reactor.advance(MISSING_S)
        await eventually(lambda look=look: _has(looks, look), f"look {look}")
        assert not master.botmaster.missing.is_missing("bs1")
    assert looks == ["bs1", "bs1"]


async def _has(items, count) -> bool:
    return len(items) >= count


@pytest_twisted.ensureDeferred
async def test_a_failing_listener_is_logged_and_the_others_are_still_told(master):
    def broken(event):
        raise RuntimeError("mail server down")

    events = []
    master.botmaster.missing.subscribe(broken)
    master.botmaster.missing.subscribe(events.append)
    with capturedLogs() as logs:
        master.reactor.advance(MISSING_S)
        await eventually(lambda: is_missing(master, "bs1"), "bs1 to be missing")
    assert [e.name for e in events] == ["bs1"]
    assert any("a missing-slave listener failed" in formatEvent(e) for e in logs)


@pytest_twisted.ensureDeferred
async def test_a_stopped_master_marks_no_slave_missing(master):
    await master.stopService()
    master.reactor.advance(10 * MISSING_S)
    assert master.botmaster.missing.missing() == {}
