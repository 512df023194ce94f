"""The seams of the build logic, the schedulers and the slave port: the real master (built in
memory) provides the interface through which each package sees it, and every in-memory double
that stands in for part of it in tests checks itself against the same interface."""

from zope.interface.verify import verifyObject

from buildfarm.common.results import FAILURE
from buildfarm.master import metrics
from buildfarm.master.pb.interfaces import IPBMaster, ISlaveRoster
from buildfarm.master.process.interfaces import IEnabledSlaves, IProcessMaster, ISchedulers
from buildfarm.master.schedulers import interfaces as sched
from buildfarm.master.schedulers.testing import FakeMaster
from fixtures.memorymaster import memory_master_fixture

master = memory_master_fixture()

SCHEDULER_TABLES = {"buildsets": sched.IBuildsetsTable, "buildrequests": sched.IBuildRequestsTable,
                    "changes": sched.IChangesTable, "state": sched.ISchedulerStateTable,
                    "builders": sched.IBuildersTable}


def test_the_master_is_the_master_the_build_logic_sees(master):
    assert verifyObject(IProcessMaster, master)
    # the services above process that it calls: checked by shape (process may not import them)
    assert verifyObject(ISchedulers, master.scheduler, tentative=True)
    assert verifyObject(IEnabledSlaves, master.slaveapi, tentative=True)


def test_the_master_is_the_master_the_schedulers_see(master):
    assert verifyObject(sched.ISchedulerMaster, master)
    assert verifyObject(sched.ISchedulerBotMaster, master.botmaster)
    # the database sits below the schedulers and declares none of their interfaces
    assert verifyObject(sched.ISchedulerDB, master.db, tentative=True)
    for table, interface in SCHEDULER_TABLES.items():
        assert verifyObject(interface, getattr(master.db, table), tentative=True), table


def test_the_master_is_the_master_the_slave_port_sees(master):
    assert verifyObject(IPBMaster, master)
    assert verifyObject(ISlaveRoster, master.botmaster)


def test_the_schedulers_fake_master_checks_itself_against_the_same_interfaces():
    fake = FakeMaster()
    assert verifyObject(sched.ISchedulerMaster, fake)
    assert verifyObject(sched.ISchedulerBotMaster, fake.botmaster)
    assert verifyObject(sched.ISchedulerDB, fake.db)
    for table, interface in SCHEDULER_TABLES.items():
        assert verifyObject(interface, getattr(fake.db, table)), table


def test_the_build_hooks_count_on_the_masters_own_metrics(master):
    metrics.build_started(master, "linux")
    metrics.build_finished(master, "linux", FAILURE)
    metrics.log_bytes_hook(master)("héllo\n")
    registry = master.metrics.registry
    assert registry.get_sample_value("buildfarm_builds_started_total", {"builder": "linux"}) == 1
    assert registry.get_sample_value("buildfarm_builds_finished_total",
                                     {"builder": "linux", "result": "failure"}) == 1
    assert registry.get_sample_value("buildfarm_log_bytes_written_total") == 7
