"""The master's service tree: start-up and stop walk it in order, listeners are services of
their owners (moved by a reconfig), a taken port fails start-up with the reason, and the
database answers through the reactor the master gives it."""

import pytest_twisted
from twisted.internet import threads
from twisted.internet.error import CannotListenError

from buildfarm.master.config import load_config
from buildfarm.master.db.connector import DBConnector
from buildfarm.master.db.migrate import upgrade_database
from buildfarm.master.listener import Listener
from buildfarm.master.service import BuildMaster, Reconfigurable
from fixtures.memorymaster import DB_URL, MASTER_CFG, MemoryThreadsReactor, start_memory_master

TREE_ORDER = ["db", "recovery", "liveness", "auth", "botmaster", "wakeups", "changes", "scheduler",
              "localslaves", "slaveapi", "services", "cas", "tasks", "queue", "pbmanager",
              "sampler", "www"]


@pytest_twisted.async_yield_fixture
async def master(tmp_path):
    started = await start_memory_master(tmp_path, MASTER_CFG)
    yield started
    if started.running:
        await started.stopService()


def test_the_tree_is_in_start_up_order_with_the_listeners_last(master):
    assert [child.name for child in master] == TREE_ORDER
    assert all(child.running for child in master)
    assert isinstance(master.pbmanager.listener, Listener) and master.pbmanager.listener.running
    assert [port for port, *_ in master.reactor.tcpServers] == [9989, 8010]


def test_every_service_that_takes_config_is_reconfigurable(master):
    assert [c.name for c in master if isinstance(c, Reconfigurable)] == [
        "liveness", "auth", "botmaster", "wakeups", "changes", "scheduler", "localslaves", "slaveapi",
        "services", "cas", "tasks", "queue", "pbmanager", "www"]


@pytest_twisted.ensureDeferred
async def test_a_reconfig_that_changes_the_web_port_moves_its_listener(master, tmp_path):
    old = master.www.listener
    (tmp_path / "master.cfg").write_text(MASTER_CFG.replace("'port': 8010", "'port': 8020"))
    await master.reconfig()
    assert master.config.www_port == "tcp:8020"
    assert master.www.port.getHost().port == 8020
    assert not old.running and old.parent is None
    assert [port for port, *_ in master.reactor.tcpServers] == [9989, 8010, 8020]


@pytest_twisted.ensureDeferred
async def test_a_reconfig_that_keeps_the_ports_keeps_the_listeners(master, tmp_path):
    listeners = (master.pbmanager.listener, master.www.listener)
    await master.reconfig()
    assert (master.pbmanager.listener, master.www.listener) == listeners


@pytest_twisted.ensureDeferred
async def test_stop_walks_the_tree_backwards_and_stops_every_child(master, monkeypatch):
    stopped = []
    for child in master:
        real = child.stopService
        monkeypatch.setattr(child, "stopService", lambda real=real, name=child.name: (stopped.append(name),
                                                                                   real())[1])
    listener = master.www.listener
    await master.stopService()
    assert stopped == list(reversed(TREE_ORDER))
    assert not listener.running and master.db.engine is None


class TakenPortsReactor(MemoryThreadsReactor):
    """Every TCP port is in use: ``listenTCP`` refuses as the kernel would."""

    def listenTCP(self, port, factory, backlog=50, interface=""):  # noqa: N802 - Twisted's name
        raise CannotListenError(interface, port, OSError(98, "Address already in use"))


@pytest_twisted.ensureDeferred
async def test_a_taken_port_fails_start_up_with_the_reason(tmp_path):
    (tmp_path / "master.cfg").write_text(MASTER_CFG)
    await threads.deferToThread(upgrade_database, DB_URL, str(tmp_path))
    master = BuildMaster(str(tmp_path), reactor=TakenPortsReactor(),
                         config=load_config(str(tmp_path / "master.cfg")))
    master.startService()
    await master.started
    try:
        assert master.start_failure is not None and master.start_failure.check(CannotListenError)
        assert master.pbmanager.port is None and not master.www.running  # nothing after PB started
    finally:
        await master.stopService()


class CountingReactor(MemoryThreadsReactor):
    """Counts the results handed back from worker threads."""

    handed_back = 0

    def callFromThread(self, f, *args, **kwargs):  # noqa: N802 - Twisted's name
        self.handed_back += 1
        super().callFromThread(f, *args, **kwargs)


@pytest_twisted.ensureDeferred
async def test_the_db_connector_answers_through_the_reactor_it_is_given(tmp_path):
    given = CountingReactor()
    db = DBConnector("sqlite://", str(tmp_path), given)
    await db.startService()
    try:
        assert await db.run(lambda conn: 42) == 42
        assert given.handed_back >= 3  # the engine's creation, the schema check, the query
    finally:
        await db.stopService()
