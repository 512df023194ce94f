"""Buildbot's ``reporters.utils.getDetailsForBuild`` (master/reporters/utils.py), which the
reporters and generators of real configurations (llvm-zorg's, python/buildmaster-config's)
call on a build dict: in a real in-memory master, it fills the dict in place with the
builder, buildset, url and, when asked, the properties and the previous build; it is a
Deferred, as Buildbot's; the import line of such a config changes only."""

import pytest
import pytest_twisted
from twisted.internet import defer

from buildfarm.common.results import FAILURE, SUCCESS
from fixtures.memorymaster import start_memory_master


async def add_build(master, results: int, props: dict) -> int:
    db, now = master.db, master.reactor.seconds()
    builderid = master.botmaster.builders["linux"].builderid
    brid = await db.buildrequests.add(builderid, "test", {}, now)
    slaveid = await db.slaves.find_or_create("bs1")
    buildid, _ = await db.builds.add(builderid, brid, slaveid, master.masterid, now, "running", props)
    await db.builds.finish(buildid, results, now, "done")
    return buildid


@pytest_twisted.ensureDeferred
async def test_get_details_for_build_fills_the_build_dict_as_buildbots_does(tmp_path):
    from buildfarm.master.reporters.utils import getDetailsForBuild  # Buildbot's module path

    master = await start_memory_master(tmp_path)
    try:
        await add_build(master, SUCCESS, {"workername": "bs1"})
        failed = await add_build(master, FAILURE, {"workername": "bs1", "branch": "main"})

        build = {"buildid": failed}
        filled = getDetailsForBuild(master, build, want_properties=True, want_previous_build=True)
        assert isinstance(filled, defer.Deferred)
        await filled
        assert (build["results"], build["builder"]["name"]) == (FAILURE, "linux")
        assert build["properties"]["branch"] == ["main", "Build"]
        assert build["prev_build"]["results"] == SUCCESS
        assert build["url"].endswith(f"/builds/{failed}")
        assert "sourcestamps" in build["buildset"]

        caller_props = {"buildid": failed, "properties": {"mine": [1, "test"]}}
        await getDetailsForBuild(master, caller_props)  # properties not asked for: kept
        assert caller_props["properties"] == {"mine": [1, "test"]} and "prev_build" not in caller_props

        with pytest.raises(KeyError, match="no build 999"):
            await getDetailsForBuild(master, {"buildid": 999})
    finally:
        await master.stopService()


def test_a_generator_module_written_against_buildbot_imports_it(tmp_path):
    from buildfarm.master.config import load_config

    (tmp_path / "master.cfg").write_text(
        "from buildfarm.master.plugins import slaves, steps, util\n"
        "from buildfarm.master.reporters.utils import getDetailsForBuild\n"
        "c = BuildmasterConfig = {}\n"
        "c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]\n"
        "c['builders'] = [util.BuilderConfig(name='linux', slavenames=['bs1'],\n"
        "                 factory=util.BuildFactory([steps.ShellCommand(command='true')]))]\n")
    assert [b.name for b in load_config(str(tmp_path / "master.cfg")).builders] == ["linux"]
