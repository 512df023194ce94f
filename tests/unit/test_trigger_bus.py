"""A Trigger step's wait (``SchedulerManager.trigger``'s Deferred) ends on ``buildset-completed``
on the bus: the event of the master that completed the buildset, delivered here by the
consumer with AMQP, wakes it at once; the shared-database poll stays as the fallback."""

from buildfarm.common.results import FAILURE, WARNINGS
from buildfarm.master.mq import events
from buildfarm.master.mq.bus import EventBus
from buildfarm.master.schedulers.manager import SchedulerManager
from buildfarm.master.schedulers.testing import FakeMaster, result_of
from buildfarm.master.schedulers.triggerable import Triggerable

OTHER_MASTER = 2


def running_manager(master: FakeMaster, *schedulers) -> SchedulerManager:
    """A SchedulerManager started as the BuildMaster starts it (``startService``)."""
    manager = SchedulerManager(master)
    master.scheduler = manager
    master.config.schedulers = list(schedulers)
    result_of(manager.startService())
    return manager


def completed_elsewhere(bsid: int, results: int, at: float):
    """``buildset-completed`` as another master's outbox sends it (through the broker)."""
    other = EventBus(origin=lambda: OTHER_MASTER)
    return events.buildset_completed(other, bsid, "tests", results, at, OTHER_MASTER)


def test_a_trigger_wait_ends_on_another_masters_buildset_completed_without_the_poll():
    master = FakeMaster()
    manager = running_manager(master, Triggerable("tests", ["a"]))
    bsid, _, finished = result_of(manager.trigger("tests", {}, parent_buildid=7))
    started = master.reactor.seconds()
    assert not finished.called

    assert master.mq.deliver_remote(completed_elsewhere(bsid, WARNINGS, started))

    assert result_of(finished) == WARNINGS
    assert master.reactor.seconds() == started  # no clock advanced: no poll ran
    assert not master.db.buildsets.rows[bsid]["complete"]  # this master's database was not read


def test_an_event_for_another_buildset_wakes_nobody():
    master = FakeMaster()
    manager = running_manager(master, Triggerable("tests", ["a"]))
    bsid, _, finished = result_of(manager.trigger("tests", {}, parent_buildid=7))
    master.mq.deliver_remote(completed_elsewhere(bsid + 1, FAILURE, 1.0))
    assert not finished.called


def test_the_poll_still_ends_a_wait_whose_event_was_missed():
    master = FakeMaster()
    manager = running_manager(master, Triggerable("tests", ["a"]))
    bsid, _, finished = result_of(manager.trigger("tests", {}, parent_buildid=7))
    master.db.buildsets.rows[bsid].update(complete=True, results=FAILURE)  # event lost
    result_of(manager.check_remote_completions())
    assert result_of(finished) == FAILURE


def test_a_stopped_manager_no_longer_listens_to_buildset_completed():
    master = FakeMaster()
    manager = running_manager(master, Triggerable("tests", ["a"]))
    before = master.mq.subscriptions()
    result_of(manager.stopService())
    assert master.mq.subscriptions() == before - 1
