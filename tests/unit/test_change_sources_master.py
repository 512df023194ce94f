"""Change sources in a real BuildMaster (in memory, its clock the test's): the master starts
its pollers once its schedulers run, a polled commit becomes a buildset of that revision, and
a reconfig that changes a poller replaces it without losing or repeating a change."""

import pytest
import pytest_twisted

from buildfarm.master.changes.gitpoller import GitPoller
from fixtures.memorymaster import MASTER_CFG, start_memory_master
from fixtures.repos import GitRepo

POLLERS_CFG = """
c['change_source'] = [changes.GitPoller({url!r}, branch='main', pollInterval={interval}, pollAtLaunch=True)]
c['schedulers'].append(schedulers.SingleBranchScheduler(
    name='on-main', builderNames=['linux'], change_filter=util.ChangeFilter(branch='main')))
"""


def config_text(url: str, interval: int) -> str:
    text = MASTER_CFG + POLLERS_CFG.format(url=url, interval=interval)
    return text.replace("from buildfarm.master.plugins import slaves, schedulers, steps, util",
                        "from buildfarm.master.plugins import changes, slaves, schedulers, steps, util")


@pytest.fixture
def repo(tmp_path):
    repo = GitRepo(str(tmp_path / "upstream"))
    repo.commit("README", "hello\n", "first")
    return repo


async def polled(poller: GitPoller) -> None:
    if poller._polling is not None:
        await poller._polling


async def on_main_buildsets(master) -> list[dict]:
    found = [b for b in await master.db.buildsets.get_all() if b["scheduler"] == "on-main"]
    return sorted(found, key=lambda b: b["bsid"])


@pytest_twisted.ensureDeferred
async def test_a_polled_commit_becomes_a_buildset_and_a_reconfig_keeps_the_poller_state(repo, tmp_path):
    master = await start_memory_master(tmp_path, config_text(repo.url, 60))
    try:
        [poller] = master.changes.sources
        assert poller.running and master.scheduler.schedulers["on-main"].active
        await polled(poller)  # the first poll, at launch
        sha = repo.commit("a.c", "1", "change")
        master.reactor.advance(60)
        await polled(poller)
        [buildset] = await on_main_buildsets(master)
        assert buildset["properties"]["revision"] == sha

        (tmp_path / "master.cfg").write_text(config_text(repo.url, 30))
        await master.reconfig()
        [replacement] = master.changes.sources
        assert replacement is not poller and not poller.running and replacement.pollInterval == 30
        await polled(replacement)  # at launch again: nothing new, nothing repeated
        later = repo.commit("a.c", "2", "after the reconfig")
        master.reactor.advance(30)
        await polled(replacement)
        assert [b["properties"]["revision"] for b in await on_main_buildsets(master)] == [sha, later]
    finally:
        await master.stopService()
    assert not master.changes.sources[0].running


@pytest_twisted.ensureDeferred
async def test_two_masters_sharing_a_database_poll_a_source_once(repo, tmp_path, db_url_postgresql):
    shared = db_url_postgresql  # c['multiMaster'] needs PostgreSQL (LISTEN/NOTIFY) or AMQP
    text = config_text(repo.url, 60).replace("'sqlite:///state.sqlite'", repr(shared)) + \
        "c['multiMaster'] = True\n"
    masters = []
    for name in ("m1", "m2"):
        (tmp_path / name).mkdir()
        masters.append(await start_memory_master(tmp_path / name, text))
    try:
        pollers = [master.changes.sources[0] for master in masters]
        for poller in pollers:
            await polled(poller)
        repo.commit("a.c", "1", "change")
        for master, poller in zip(masters, pollers, strict=True):
            master.reactor.advance(60)
            await polled(poller)
        changes = await masters[0].db.changes.get_all()
        assert [c["revision"] for c in changes] == [repo.head()]
        # Only the master holding the claim ever ran git: the other has no workdir.
        polled_by = [name for name in ("m1", "m2") if (tmp_path / name / "gitpoller-work").exists()]
        leases = {lease["name"]: lease["masterid"] for lease in await masters[0].db.leases.get_all()}
        holder = {master.masterid: name for master, name in zip(masters, ("m1", "m2"), strict=True)}
        assert polled_by == [holder[leases[pollers[0].lease_name]]]
    finally:
        for master in masters:
            await master.stopService()
