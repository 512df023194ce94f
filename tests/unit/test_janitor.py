"""``c['configurators']`` and ``util.JanitorConfigurator``: what it adds to the configuration,
the database query that deletes old log contents, and the janitor's build on a real master in
memory (real SQLite database, the master's clock advanced by the test)."""

import datetime

import pytest
import pytest_twisted
from twisted.cred.error import UnauthorizedLogin
from zope.interface.verify import verifyObject

from buildfarm.common.results import SUCCESS
from buildfarm.master.config import IConfigurator, LocalSlaveConfig, load_config
from buildfarm.master.configexec import ConfigErrors
from buildfarm.master.configurators.janitor import JANITOR_NAME, JanitorConfigurator
from buildfarm.master.db.logs import DELETED_LOG
from buildfarm.master.db.testing import add_running_build
from buildfarm.master.process.localslave import LocalSlaveConnection
from buildfarm.master.schedulers.forcesched import ForceScheduler
from buildfarm.master.schedulers.timed import Nightly
from buildfarm.master.www.site import WWWService
from fixtures.mastercfg import write_master_cfg as write
from fixtures.memoryhttp import render
from fixtures.memorymaster import MASTER_CFG, eventually, start_memory_master
from fixtures.pbclient import log_in

DAY_S = 86400.0
NOW = 100 * DAY_S  # the master's clock: day 100 of the epoch (a Thursday), 00:00 UTC

JANITOR_CFG = MASTER_CFG + """
import datetime
c['configurators'] = [util.JanitorConfigurator(logHorizon=datetime.timedelta(days=30), hour='*')]
"""


# -- the configuration it adds ---------------------------------------------------------------


def test_the_janitor_is_a_configurator():
    assert verifyObject(IConfigurator, JanitorConfigurator(logHorizon=datetime.timedelta(days=1)))


def test_the_janitor_adds_a_local_slave_a_builder_a_nightly_and_a_force_scheduler(tmp_path):
    config = load_config(write(tmp_path, MASTER_CFG + """
import datetime
c['configurators'] = [util.JanitorConfigurator(logHorizon=datetime.timedelta(weeks=4), hour=12,
                                               dayOfWeek=6)]
"""))
    assert isinstance(config.slaves[JANITOR_NAME], LocalSlaveConfig) and config.slaves[JANITOR_NAME].local
    assert config.builder(JANITOR_NAME).slavenames == [JANITOR_NAME]
    nightly, force = config.schedulers[-2:]
    assert isinstance(nightly, Nightly)
    assert (nightly.name, nightly.hour, nightly.minute, nightly.dayOfWeek) == (JANITOR_NAME, 12, 0, 6)
    assert isinstance(force, ForceScheduler) and force.name == "__Janitor_force"
    assert nightly.builderNames == force.builderNames == [JANITOR_NAME]
    assert config.warnings == []


def test_the_janitor_adds_its_slave_to_workers_in_a_buildbot_config(tmp_path):
    config = load_config(write(tmp_path, MASTER_CFG.replace("c['slaves'] =", "c['workers'] =") + """
import datetime
c['configurators'] = [util.JanitorConfigurator(logHorizon=datetime.timedelta(days=1))]
"""))
    assert set(config.slaves) == {"bs1", "bs2", JANITOR_NAME}


def test_without_a_log_horizon_the_janitor_adds_nothing(tmp_path):
    config = load_config(write(tmp_path, MASTER_CFG + "c['configurators'] = [util.JanitorConfigurator()]\n"))
    assert JANITOR_NAME not in config.slaves and config.builder(JANITOR_NAME) is None


def test_build_data_horizon_is_accepted_with_a_warning(tmp_path):
    config = load_config(write(tmp_path, MASTER_CFG + """
import datetime
c['configurators'] = [util.JanitorConfigurator(logHorizon=datetime.timedelta(days=1),
                                               build_data_horizon=datetime.timedelta(days=1))]
"""))
    assert config.warnings == [
        "master.cfg:13: JanitorConfigurator argument 'build_data_horizon' has no effect: "
        "buildfarm has no build data table to clean (Buildbot's build_data)"]


def test_bad_janitor_arguments_and_non_configurators_are_errors_at_their_lines(tmp_path):
    with pytest.raises(ConfigErrors) as caught:
        load_config(write(tmp_path, MASTER_CFG + """
c['configurators'] = [util.JanitorConfigurator(logHorizon=30),
                      util.JanitorConfigurator(logHorizon=None, weekday=3),
                      'tidy up']
"""))
    assert [str(e) for e in caught.value.errors] == [
        "master.cfg:12: JanitorConfigurator failed: logHorizon must be a positive datetime.timedelta, not 30",
        "master.cfg:13: JanitorConfigurator failed: unknown argument(s) 'weekday'",
        "master.cfg:12: c['configurators'] holds 'tidy up', not a configurator (util.JanitorConfigurator)",
    ]


def test_a_configurator_of_master_cfg_runs_before_validation(tmp_path):
    """Any object providing IConfigurator works (as in Buildbot); what it adds is validated."""
    with pytest.raises(ConfigErrors) as caught:
        load_config(write(tmp_path, MASTER_CFG + """
from zope.interface import implementer
from buildfarm.master.config import IConfigurator

@implementer(IConfigurator)
class AddsABuilder:
    def configure(self, config_dict):
        config_dict['builders'].append(util.BuilderConfig(name='extra', slavenames=['nobody'],
                                                          factory=util.BuildFactory([])))

c['configurators'] = [AddsABuilder()]
"""))
    assert "builder 'extra' names unknown slave 'nobody'" in str(caught.value)


# -- the database query ----------------------------------------------------------------------


async def add_step_with_log(db, buildid: int, number: int, started_at: float, text: str) -> int:
    stepid = await db.steps.add(buildid, number, f"step{number}", started_at)
    logid = await db.logs.add(stepid, "stdio")
    await db.logs.append(logid, text)
    await db.logs.finish(logid)
    return logid


@pytest_twisted.ensureDeferred
async def test_old_log_contents_are_deleted_and_new_ones_and_every_row_kept(sqlite_db):
    build = await add_running_build(sqlite_db, now=NOW - 40 * DAY_S)
    old = await add_step_with_log(sqlite_db, build.buildid, 0, NOW - 40 * DAY_S, "old line\n" * 3)
    new = await add_step_with_log(sqlite_db, build.buildid, 1, NOW - 10 * DAY_S, "new line\n")

    deleted = await sqlite_db.logs.delete_old_contents(NOW - 30 * DAY_S)

    assert deleted == 1
    assert await sqlite_db.logs.get_text(old) == "" and await sqlite_db.logs.get_text(new) == "new line\n"
    old_row, new_row = await sqlite_db.logs.get(old), await sqlite_db.logs.get(new)
    assert (old_row["type"], old_row["num_lines"]) == (DELETED_LOG, 3) and new_row["type"] == "s"
    assert len(await sqlite_db.steps.get_all(build.buildid)) == 2
    assert await sqlite_db.builds.get(build.buildid) is not None
    assert await sqlite_db.logs.delete_old_contents(NOW - 30 * DAY_S) == 0  # nothing left to delete


# -- the janitor's build on a real master ----------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_nightly_janitor_build_deletes_old_log_contents_and_shows_as_a_build(tmp_path):
    master = await start_memory_master(tmp_path, JANITOR_CFG, now=NOW - 3600.0 + 1)
    try:
        db = master.db
        janitor = master.botmaster.slaves[JANITOR_NAME]
        assert isinstance(janitor.mind, LocalSlaveConnection)  # attached inside the master
        build = await add_running_build(db, builder="linux", now=NOW - 40 * DAY_S)
        old = await add_step_with_log(db, build.buildid, 0, NOW - 40 * DAY_S, "old\n")
        new = await add_step_with_log(db, build.buildid, 1, NOW - 2 * DAY_S, "new\n")

        master.reactor.advance(3600.0)  # past the hour: the Nightly scheduler fires

        async def janitor_builds():
            builderid = master.botmaster.builders[JANITOR_NAME].builderid
            return [b for b in await db.builds.get_all(builderid=builderid) if b["complete_at"] is not None]

        await eventually(janitor_builds, "the janitor's build to finish")
        finished = await janitor_builds()
        assert [(b["results"], b["state_string"]) for b in finished] == [(SUCCESS, "build success")]
        steps = await db.steps.get_all(finished[0]["buildid"])
        assert [(s["name"], s["state_string"]) for s in steps] == \
            [("LogChunksJanitor", "deleted 1 logchunks")]
        assert await db.logs.get_text(old) == "" and await db.logs.get_text(new) == "new\n"
        assert {b["buildid"] for b in await db.builds.get_all()} == {build.buildid, finished[0]["buildid"]}
        page = (await render(WWWService(master).make_site().resource, "GET", f"/builds/{build.buildid}")).body
        assert page.decode().count("The janitor deleted this log's text") == 1  # the old log only
        assert "new\n</pre>" in page.decode()
    finally:
        await master.stopService()


@pytest_twisted.ensureDeferred
async def test_a_command_step_on_the_local_slave_ends_in_exception_saying_why(tmp_path):
    master = await start_memory_master(tmp_path, MASTER_CFG + """
from buildfarm.master.config import LocalSlaveConfig
c['slaves'].append(LocalSlaveConfig('inside'))
c['builders'].append(util.BuilderConfig(name='shell-inside', slavenames=['inside'],
                     factory=util.BuildFactory([steps.ShellCommand(command=['true'])])))
c['schedulers'].append(schedulers.ForceScheduler(name='f2', builderNames=['shell-inside']))
""")
    try:
        db = master.db
        builderid = master.botmaster.builders["shell-inside"].builderid
        await db.buildrequests.add(builderid, "test", {}, master.reactor.seconds())
        master.botmaster.maybe_start_builds()

        async def finished():
            return [b for b in await db.builds.get_all(builderid=builderid) if b["complete_at"] is not None]

        await eventually(finished, "the build on the local slave to finish")
        step = (await db.steps.get_all((await finished())[0]["buildid"]))[0]
        assert "the master's local slave inside runs no commands ('shell')" in step["state_string"]
    finally:
        await master.stopService()


@pytest_twisted.ensureDeferred
async def test_a_reconfig_without_the_janitor_detaches_its_local_slave(tmp_path):
    master = await start_memory_master(tmp_path, JANITOR_CFG)
    try:
        assert JANITOR_NAME in master.botmaster.slaves
        (tmp_path / "master.cfg").write_text(MASTER_CFG)
        await master.reconfig()
        assert JANITOR_NAME not in master.botmaster.slaves

        async def detach_recorded():
            return (await master.db.slaves.get(JANITOR_NAME))["connected_masterid"] is None

        await eventually(detach_recorded, "the local slave's detach to be recorded")
        (tmp_path / "master.cfg").write_text(JANITOR_CFG)
        await master.reconfig()
        assert master.botmaster.slaves[JANITOR_NAME].attached
    finally:
        await master.stopService()


@pytest_twisted.ensureDeferred
async def test_the_pb_port_refuses_the_local_slaves_name(tmp_path):
    """A local slave has no password: no PB login can take its name, whatever it sends."""
    master = await start_memory_master(tmp_path, JANITOR_CFG)
    try:
        for password in ("", "None", "pass"):
            login = log_in(master, name=JANITOR_NAME, password=password)
            assert login.result and login.result[0].check(UnauthorizedLogin), password
        assert isinstance(master.botmaster.slaves[JANITOR_NAME].mind, LocalSlaveConnection)
    finally:
        await master.stopService()
