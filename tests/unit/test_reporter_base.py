"""``ReporterBase`` (master/reporters/base.py) in a real in-memory master: build events
become reports recorded in the database and then sent; the build never waits for the
endpoint; a report pending when the master stops, and a build whose start or end was
written just before the master died, are reported once after a restart (a start before its
end, never after it); missing slaves are reported."""

import pytest_twisted
from twisted.internet import defer

from buildfarm.common.results import FAILURE, RETRY, SUCCESS
from buildfarm.master.process.buildevents import BUILD_FINISHED, BUILD_STARTED, BuildEvent
from buildfarm.master.reporters.interfaces import IReporter
from fixtures.memorymaster import MASTER_CFG, eventually, on_database, start_memory_master

REPORTER_CFG = MASTER_CFG + """
from buildfarm.master.plugins import reporters
from buildfarm.master.reporters.base import ReporterBase


class Recording(ReporterBase):
    '''Records what it sends; fails while ``fail`` is set; hangs while ``hang`` is.'''

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sent, self.fail, self.hang = [], False, False

    def sendMessage(self, reports):
        if self.hang:
            return defer.Deferred()
        if self.fail:
            raise ConnectionRefusedError('endpoint down')
        self.sent.append([(r['body'], r['subject']) for r in reports])


from twisted.internet import defer
body = reporters.MessageFormatterFunction(
    lambda ctx: {'buildid': ctx['build']['buildid'], 'results': ctx['results'],
                 'complete': ctx['build']['complete']}, 'json')
c['services'] = [Recording(name='rec', backoff_base_s=10.0, generators=[
    reporters.BuildStatusGenerator(mode='all', report_new=True, message_formatter=body),
    reporters.WorkerMissingGenerator(workers=['bs2'])])]
c['slaves'] = [slaves.Worker('bs1', 'pass'),
               slaves.Worker('bs2', 'pass', missing_timeout=60, notify_on_missing=['ops@example.org'])]
"""


def reporter_of(master):
    return master.config_services.getServiceNamed("rec")


async def add_build(master, results: int | None, publish: bool = True) -> int:
    """A build of builder linux in the database (finished with ``results`` unless None),
    its events published as the build code publishes them (unless ``publish`` is False)."""
    db, now = master.db, master.reactor.seconds()
    builderid = master.botmaster.builders["linux"].builderid
    brid = await db.buildrequests.add(builderid, "test", {}, now)
    slaveid = await db.slaves.find_or_create("bs1")
    buildid, _ = await db.builds.add(builderid, brid, slaveid, master.masterid, now, "running",
                                     {"workername": "bs1"})
    if publish:
        master.buildevents.publish(BuildEvent(BUILD_STARTED, buildid))
    if results is not None:
        await db.builds.finish(buildid, results, now, "done")
        if publish:
            master.buildevents.publish(BuildEvent(BUILD_FINISHED, buildid, results=results))
    return buildid


async def report_states(master) -> list[tuple[str, str]]:
    return [(r["event"], r["state"]) for r in await master.db.reports.get_all("rec")]


def fail_once(reporter, failing_kind: str) -> None:
    """The reporter's generator fails the next event of ``failing_kind``, then works again."""
    generator = reporter.generators[0]
    real_generate = generator.generate

    async def broken_once(master_, reporter_, kind, build):
        if kind == failing_kind:
            generator.generate = real_generate
            raise RuntimeError("database gone")
        return await real_generate(master_, reporter_, kind, build)

    generator.generate = broken_once


async def settled_states(master, expected: list) -> list[tuple[str, str]]:
    """The reports' states once they are ``expected``: the sender marks a report sent in the
    database after ``sendMessage`` returned, so a test that has seen the send waits for the mark."""
    async def settled():
        return await report_states(master) == expected
    try:
        await eventually(lambda: defer.ensureDeferred(settled()), "the sender to mark its reports")
    except AssertionError:
        pass  # the comparison below shows what the states are
    return await report_states(master)


def bodies(reporter) -> list[dict]:
    return [body for reports in reporter.sent for body, _ in reports]


@pytest_twisted.ensureDeferred
async def test_build_events_are_recorded_then_sent_in_order(tmp_path):
    master = await start_memory_master(tmp_path, REPORTER_CFG)
    try:
        reporter = reporter_of(master)
        assert IReporter.providedBy(reporter)
        ok = await add_build(master, SUCCESS)
        failed = await add_build(master, FAILURE)
        await eventually(lambda: defer.succeed(len(reporter.sent) == 4), "four reports sent")
        assert bodies(reporter) == [
            {"buildid": ok, "results": None, "complete": False},
            {"buildid": ok, "results": SUCCESS, "complete": True},
            {"buildid": failed, "results": None, "complete": False},
            {"buildid": failed, "results": FAILURE, "complete": True}]
        expected = [
            (f"build:{ok}:build_started", "sent"), (f"build:{ok}:build_finished", "sent"),
            (f"build:{failed}:build_started", "sent"), (f"build:{failed}:build_finished", "sent")]
        assert await settled_states(master, expected) == expected
    finally:
        await master.stopService()


@pytest_twisted.ensureDeferred
async def test_builds_go_on_while_the_endpoint_hangs_and_stopping_cancels_the_send(tmp_path):
    master = await start_memory_master(tmp_path, REPORTER_CFG)
    reporter = reporter_of(master)
    reporter.hang = True
    await add_build(master, SUCCESS)
    await add_build(master, SUCCESS)  # not held up by the hanging send
    await eventually(lambda: _recorded(master, 4), "every report recorded")
    assert {state for _, state in await report_states(master)} == {"pending"}
    await master.stopService()  # cancels the hanging send: the report stays pending
    assert reporter.sent == []


async def _recorded(master, n: int) -> bool:
    return len(await master.db.reports.get_all("rec")) == n


@pytest_twisted.ensureDeferred
async def test_a_report_pending_when_the_master_stops_is_sent_once_after_the_restart(tmp_path, db_url):
    cfg = on_database(db_url, REPORTER_CFG)
    master = await start_memory_master(tmp_path, cfg)
    reporter_of(master).fail = True
    buildid = await add_build(master, FAILURE)
    await eventually(lambda: _attempted(master, 2), "the first attempt failed")
    await master.stopService()

    restarted = await start_memory_master(tmp_path, cfg, now=100.0)
    try:
        reporter = reporter_of(restarted)
        await eventually(lambda: defer.succeed(len(reporter.sent) == 2), "sent after the restart")
        assert bodies(reporter) == [{"buildid": buildid, "results": None, "complete": False},
                                    {"buildid": buildid, "results": FAILURE, "complete": True}]
    finally:
        await restarted.stopService()
    again = await start_memory_master(tmp_path, cfg, now=200.0)
    try:
        await eventually(lambda: defer.succeed(again.config_services.running), "started")
        await reporter_of(again)._starting
        assert reporter_of(again).sent == []  # once
    finally:
        await again.stopService()


async def _attempted(master, n: int) -> bool:
    rows = await master.db.reports.get_all("rec")
    return len(rows) == n and all(r["attempts"] >= 1 for r in rows[:1])


@pytest_twisted.ensureDeferred
async def test_a_build_that_ended_just_before_a_crash_is_reported_after_the_restart(tmp_path, db_url):
    cfg = on_database(db_url, REPORTER_CFG)
    master = await start_memory_master(tmp_path, cfg)
    await reporter_of(master)._starting  # the reporter's mark is set
    buildid = await add_build(master, FAILURE, publish=False)  # the master died before the events
    await master.stopService()

    restarted = await start_memory_master(tmp_path, cfg, now=100.0)
    try:
        reporter = reporter_of(restarted)
        await eventually(lambda: defer.succeed(len(reporter.sent) == 2), "reported after the restart")
        assert bodies(reporter) == [{"buildid": buildid, "results": None, "complete": False},
                                    {"buildid": buildid, "results": FAILURE, "complete": True}]
        expected = [(f"build:{buildid}:build_started", "sent"),
                                                  (f"build:{buildid}:build_finished", "sent")]
        assert await settled_states(restarted, expected) == expected
    finally:
        await restarted.stopService()


@pytest_twisted.ensureDeferred
async def test_a_build_that_started_just_before_a_crash_is_reported_started_after_the_restart(
        tmp_path, db_url):
    cfg = on_database(db_url, REPORTER_CFG)
    master = await start_memory_master(tmp_path, cfg)
    await reporter_of(master)._starting
    buildid = await add_build(master, None, publish=False)  # running; the master died before the event
    await master.stopService()

    restarted = await start_memory_master(tmp_path, cfg, now=100.0)  # ends the build RETRY
    try:
        reporter = reporter_of(restarted)
        await eventually(lambda: defer.succeed(len(reporter.sent) == 1), "reported after the restart")
        assert (await restarted.db.builds.get(buildid))["results"] == RETRY
        # Reported as the start it was (mode 'all' reports no RETRY end).
        assert bodies(reporter) == [{"buildid": buildid, "results": None, "complete": False}]
        expected = [(f"build:{buildid}:build_started", "sent")]
        assert await settled_states(restarted, expected) == expected
    finally:
        await restarted.stopService()


@pytest_twisted.ensureDeferred
async def test_a_new_reporter_does_not_report_the_builds_before_it(tmp_path):
    plain = await start_memory_master(tmp_path)
    await add_build(plain, SUCCESS)
    await plain.stopService()
    master = await start_memory_master(tmp_path, REPORTER_CFG)
    try:
        await reporter_of(master)._starting
        assert await report_states(master) == []
    finally:
        await master.stopService()


@pytest_twisted.ensureDeferred
async def test_a_slave_gone_missing_is_reported(tmp_path):
    master = await start_memory_master(tmp_path, REPORTER_CFG)
    try:
        reporter = reporter_of(master)
        master.reactor.advance(61)  # bs2 never attached: missing after its missing_timeout
        await eventually(lambda: defer.succeed(len(reporter.sent) == 1), "the missing slave reported")
        [(body, subject)] = reporter.sent[0]
        assert subject == "buildfarm buildfarm: slave bs2 missing"
        assert "Slave bs2 of buildfarm has gone away" in body
        assert [event for event, _ in await report_states(master)] == ["slave:bs2:missing:0.0"]
    finally:
        await master.stopService()


@pytest_twisted.ensureDeferred
async def test_reports_sent_a_week_ago_are_deleted_at_a_start(tmp_path):
    master = await start_memory_master(tmp_path, REPORTER_CFG)
    reporter = reporter_of(master)
    await add_build(master, SUCCESS)
    await eventually(lambda: defer.succeed(len(reporter.sent) == 2), "sent")
    await master.stopService()
    later = await start_memory_master(tmp_path, REPORTER_CFG, now=8 * 24 * 3600.0)
    try:
        await reporter_of(later)._starting
        assert await report_states(later) == []
    finally:
        await later.stopService()


@pytest_twisted.ensureDeferred
async def test_each_master_sends_the_reports_of_its_own_builds(tmp_path):
    shared = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    cfg = REPORTER_CFG.replace("'db_url': 'sqlite:///state.sqlite'", f"'db_url': {shared!r}")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = await start_memory_master(tmp_path / "a", cfg)
    second = await start_memory_master(tmp_path / "b", cfg)
    try:
        assert first.masterid != second.masterid
        buildid = await add_build(first, FAILURE)
        await eventually(lambda: defer.succeed(len(reporter_of(first).sent) == 2), "sent by the first")
        await eventually(lambda: _all_sent(second), "recorded as sent")
        assert reporter_of(second).sent == []
        assert [r["masterid"] for r in await second.db.reports.get_all("rec")] == [first.masterid] * 2
        assert bodies(reporter_of(first))[-1]["buildid"] == buildid
    finally:
        await second.stopService()
        await first.stopService()


async def _all_sent(master) -> bool:
    return {state for _, state in await report_states(master)} == {"sent"}


@pytest_twisted.ensureDeferred
async def test_after_a_reconfig_the_new_reporter_of_the_same_name_sends_what_was_pending(tmp_path):
    master = await start_memory_master(tmp_path, REPORTER_CFG)
    try:
        old = reporter_of(master)
        old.fail = True
        await add_build(master, FAILURE)
        await eventually(lambda: _attempted(master, 2), "a failed attempt")
        await master.reconfig()
        new = reporter_of(master)
        assert new is not old and not old.running
        await new._starting
        await eventually(lambda: defer.succeed(bool(new.sender._timer)), "its retry scheduled")
        master.reactor.advance(10)  # the recorded retry time
        await eventually(lambda: defer.succeed(len(new.sent) == 2), "sent by the new reporter")
        assert old.sent == []
    finally:
        await master.stopService()


@pytest_twisted.ensureDeferred
async def test_a_build_end_that_failed_to_be_handled_is_looked_at_again_at_the_next_start(tmp_path):
    master = await start_memory_master(tmp_path, REPORTER_CFG)
    reporter = reporter_of(master)
    await reporter._starting
    fail_once(reporter, BUILD_FINISHED)
    lost = await add_build(master, FAILURE)
    master.reactor.advance(500)
    await add_build(master, SUCCESS)  # handled fine at 500: the mark must not pass the lost one
    await eventually(lambda: _recorded(master, 4), "the other reports recorded")  # and bs2 missing
    await eventually(lambda: _all_sent(master), "and sent")
    await master.stopService()

    restarted = await start_memory_master(tmp_path, REPORTER_CFG, now=1000.0)
    try:
        reporter = reporter_of(restarted)
        await eventually(lambda: defer.succeed(len(reporter.sent) == 1), "the lost end reported")
        assert bodies(reporter) == [{"buildid": lost, "results": FAILURE, "complete": True}]
    finally:
        await restarted.stopService()


@pytest_twisted.ensureDeferred
async def test_a_build_start_that_failed_to_be_handled_is_not_reported_after_its_end(tmp_path):
    master = await start_memory_master(tmp_path, REPORTER_CFG)
    reporter = reporter_of(master)
    await reporter._starting
    fail_once(reporter, BUILD_STARTED)
    lost = await add_build(master, FAILURE)
    await eventually(lambda: defer.succeed(len(reporter.sent) == 1), "its end sent")
    await master.stopService()

    restarted = await start_memory_master(tmp_path, REPORTER_CFG, now=100.0)
    try:
        await reporter_of(restarted)._starting  # looked again at the build: its end is recorded
        assert reporter_of(restarted).sent == []  # a start after its end would mislead
        expected = [(f"build:{lost}:build_finished", "sent")]
        assert await settled_states(restarted, expected) == expected
    finally:
        await restarted.stopService()
