"""Report generators (master/reporters/generators/): which builds each ``mode`` reports, for
every result, with and without a previous build; the builder/tag/scheduler/branch filters;
start and end reports; missing slaves."""

import pytest
import pytest_twisted
from zope.interface.verify import verifyObject

from buildfarm.common.results import (
    CANCELLED,
    EXCEPTION,
    FAILURE,
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
)
from buildfarm.master.config import MasterConfig
from buildfarm.master.process.buildevents import BUILD_FINISHED, BUILD_STARTED
from buildfarm.master.process.missing import SlaveMissing
from buildfarm.master.reporters.generators.build import (
    BuildStartEndStatusGenerator,
    BuildStatusGenerator,
    expand_mode,
)
from buildfarm.master.reporters.generators.worker import WorkerMissingGenerator
from buildfarm.master.reporters.interfaces import IReportGenerator
from buildfarm.master.reporters.message import MessageFormatter, MessageFormatterFunction

ALL_RESULTS = (SUCCESS, WARNINGS, FAILURE, SKIPPED, EXCEPTION, RETRY, CANCELLED)


class ConfiguredMaster:
    """The two things a generator reads of the master: its configuration and id."""

    def __init__(self):
        self.config = MasterConfig("master.cfg", title="Farm", buildbot_url="http://farm.example/")
        self.masterid = 1


def build_dict(results=SUCCESS, previous=None, builder="linux", tags=(), props=None) -> dict:
    properties = {"workername": ["bs1", "Build"], "scheduler": ["force", "Build"],
                  "branch": ["main", "Build"]}
    properties.update({k: [v, "Build"] for k, v in (props or {}).items()})
    return {
        "buildid": 7, "number": 3, "builderid": 2, "results": results, "state_string": "build done",
        "complete": results is not None, "properties": properties,
        "builder": {"builderid": 2, "name": builder, "tags": list(tags)},
        "buildset": {"bsid": 1, "sourcestamps": [{"branch": "main", "revision": "abc", "project": "",
                                                  "codebase": "", "patch": None}]},
        "prev_build": None if previous is None else {"results": previous},
        "steps": [],
    }


async def reported(generator, results, previous=None, kind=BUILD_FINISHED) -> bool:
    build = build_dict(results, previous)
    return await generator.generate(ConfiguredMaster(), None, kind, build) is not None


# mode -> the results it reports with no previous build, and with a previous SUCCESS / FAILURE
MODE_TABLE = {
    "all": {SUCCESS, WARNINGS, FAILURE, EXCEPTION, CANCELLED},
    "failing": {FAILURE},
    "passing": {SUCCESS},
    "warnings": {WARNINGS, FAILURE},
    "exception": {EXCEPTION},
    "cancelled": {CANCELLED},
    "problem": set(),
    "change": set(),
}


@pytest.mark.parametrize("mode", sorted(MODE_TABLE))
@pytest_twisted.ensureDeferred
async def test_each_mode_reports_the_results_it_names(mode):
    generator = BuildStatusGenerator(mode=mode)
    assert {r for r in ALL_RESULTS if await reported(generator, r)} == MODE_TABLE[mode]


@pytest_twisted.ensureDeferred
async def test_problem_reports_a_failure_after_a_build_that_did_not_fail():
    generator = BuildStatusGenerator(mode="problem")
    assert {r for r in ALL_RESULTS if await reported(generator, r, previous=SUCCESS)} == {FAILURE}
    assert {r for r in ALL_RESULTS if await reported(generator, r, previous=FAILURE)} == set()


@pytest_twisted.ensureDeferred
async def test_change_reports_a_result_different_from_the_previous_one():
    generator = BuildStatusGenerator(mode="change")
    assert {r for r in ALL_RESULTS if await reported(generator, r, previous=SUCCESS)} == \
        set(ALL_RESULTS) - {SUCCESS}
    assert {r for r in ALL_RESULTS if await reported(generator, r, previous=FAILURE)} == \
        set(ALL_RESULTS) - {FAILURE}


@pytest_twisted.ensureDeferred
async def test_the_default_mode_is_failing_passing_and_warnings():
    generator = BuildStatusGenerator()
    assert generator.mode == ("failing", "passing", "warnings")
    assert {r for r in ALL_RESULTS if await reported(generator, r)} == {SUCCESS, WARNINGS, FAILURE}


@pytest_twisted.ensureDeferred
async def test_a_list_of_modes_reports_the_union():
    generator = BuildStatusGenerator(mode=("passing", "exception"))
    assert {r for r in ALL_RESULTS if await reported(generator, r)} == {SUCCESS, EXCEPTION}


@pytest.mark.parametrize("mode", ["sometimes", ("failing", "all"), ["nope"]])
def test_an_unknown_mode_is_refused_with_the_valid_ones(mode):
    with pytest.raises(ValueError, match="is not one of change, failing, passing"):
        BuildStatusGenerator(mode=mode)


def test_mode_all_expands_to_every_result():
    assert expand_mode("all") == ("failing", "passing", "warnings", "exception", "cancelled")


@pytest_twisted.ensureDeferred
async def test_starts_are_reported_only_with_report_new():
    assert not await reported(BuildStatusGenerator(mode="all"), None, kind=BUILD_STARTED)
    assert await reported(BuildStatusGenerator(mode="all", report_new=True), None, kind=BUILD_STARTED)


@pytest.mark.parametrize("kwargs,wanted", [
    ({"builders": ["linux"]}, True), ({"builders": ["win"]}, False),
    ({"tags": ["fast", "nightly"]}, True), ({"tags": ["slow"]}, False),
    ({"schedulers": ["force"]}, True), ({"schedulers": ["nightly"]}, False),
    ({"branches": ["main"]}, True), ({"branches": ["release"]}, False),
])
@pytest_twisted.ensureDeferred
async def test_builders_tags_schedulers_and_branches_filter(kwargs, wanted):
    generator = BuildStatusGenerator(mode="all", **kwargs)
    build = build_dict(SUCCESS, tags=["fast"])
    assert (await generator.generate(ConfiguredMaster(), None, BUILD_FINISHED, build) is not None) == wanted


def test_a_filter_must_be_a_list_of_names():
    with pytest.raises(ValueError, match="builders must be a list of strings"):
        BuildStatusGenerator(builders="linux")


@pytest_twisted.ensureDeferred
async def test_the_report_holds_the_message_the_build_and_the_subject_pattern():
    # A formatter without a subject: the generator's ``subject`` pattern gives it.
    formatter = MessageFormatterFunction(lambda context: context["buildername"], "plain")
    generator = BuildStatusGenerator(mode="failing", subject="%(result)s on %(builder)s of %(title)s",
                                     message_formatter=formatter)
    build = build_dict(FAILURE)
    report = await generator.generate(ConfiguredMaster(), None, BUILD_FINISHED, build)
    assert report["body"] == "linux"
    assert report["subject"] == "failure on linux of Farm"
    assert report["type"] == "plain"
    assert report["results"] == FAILURE
    assert report["builds"] == [build]
    assert report["buildset"] == build["buildset"]


@pytest_twisted.ensureDeferred
async def test_add_logs_puts_the_named_logs_in_the_report():
    generator = BuildStatusGenerator(mode="all", add_logs=["stdio"])
    build = build_dict(SUCCESS)
    build["steps"] = [{"number": 0, "name": "compile", "results": SUCCESS,
                       "logs": [{"name": "stdio", "content": {"content": "ok\n"}},
                                {"name": "err.text", "content": {"content": ""}}]}]
    report = await generator.generate(ConfiguredMaster(), None, BUILD_FINISHED, build)
    assert [log["name"] for log in report["logs"]] == ["stdio"]
    assert generator.want()["want_logs_content"] is True


@pytest_twisted.ensureDeferred
async def test_start_end_generator_reports_both_with_their_formatters():
    generator = BuildStartEndStatusGenerator(
        builders=["linux"], start_formatter=MessageFormatter(template="started {{ buildername }}"),
        end_formatter=MessageFormatter(template="ended {{ buildername }}: {{ statusToString(results) }}"))
    master = ConfiguredMaster()
    start = await generator.generate(master, None, BUILD_STARTED, build_dict(None))
    end = await generator.generate(master, None, BUILD_FINISHED, build_dict(RETRY))
    assert (start["body"], end["body"]) == ("started linux", "ended linux: retry")
    assert await generator.generate(master, None, BUILD_FINISHED, build_dict(SUCCESS, builder="win")) is None


@pytest_twisted.ensureDeferred
async def test_worker_missing_generator_reports_the_named_slaves():
    slave = SlaveMissing(name="bs1", gone_since=0.0, missing_timeout=3600.0, notify=("ops@example.org",))
    master = ConfiguredMaster()
    report = await WorkerMissingGenerator().generate_missing(master, None, slave)
    assert report["subject"] == "buildfarm Farm: slave bs1 missing"
    assert "Slave bs1 of Farm has gone away" in report["body"]
    assert "1970-01-01 00:00:00 UTC" in report["body"]
    assert report["users"] == ["ops@example.org"]
    assert await WorkerMissingGenerator(workers=["bs2"]).generate_missing(master, None, slave) is None


def test_generators_provide_the_interface():
    for generator in (BuildStatusGenerator(), BuildStartEndStatusGenerator(), WorkerMissingGenerator()):
        assert verifyObject(IReportGenerator, generator)


@pytest_twisted.ensureDeferred
async def test_without_a_subject_from_the_formatter_the_subject_is_buildbots():
    formatter = MessageFormatterFunction(lambda context: {"id": context["build"]["buildid"]}, "json")
    report = await BuildStatusGenerator(message_formatter=formatter).generate(
        ConfiguredMaster(), None, BUILD_FINISHED, build_dict(WARNINGS))
    assert report["subject"] == "Buildbot warnings in Farm on linux"


@pytest_twisted.ensureDeferred
async def test_start_end_generator_says_started_and_done_by_default():
    generator, master = BuildStartEndStatusGenerator(), ConfiguredMaster()
    start = await generator.generate(master, None, BUILD_STARTED, build_dict(None))
    end = await generator.generate(master, None, BUILD_FINISHED, build_dict(FAILURE))
    assert (start["body"], end["body"]) == ("Build started.", "Build done.")
    assert end["subject"] is None  # as in Buildbot: this generator has no subject pattern


@pytest.mark.parametrize("workers", [("bs1",), {"bs1"}, ["bs1"]])
@pytest_twisted.ensureDeferred
async def test_worker_missing_generator_takes_any_collection_of_names(workers):
    slave = SlaveMissing(name="bs1", gone_since=0.0, missing_timeout=60.0, notify=())
    assert await WorkerMissingGenerator(workers=workers).generate_missing(ConfiguredMaster(), None, slave)


def test_worker_missing_generator_refuses_a_single_name():
    with pytest.raises(ValueError, match="workers must be 'all' or a list of names"):
        WorkerMissingGenerator(workers="bs1")


class MasterWithChanges(ConfiguredMaster):
    """A configured master with a real database, for the changes a build was made for."""

    def __init__(self, db):
        super().__init__()
        self.db = db


@pytest_twisted.ensureDeferred
async def test_the_report_names_the_change_authors_and_the_owner_as_its_users(sqlite_db):
    # Buildbot's getResponsibleUsersForBuild: the authors of the build's changes and whoever
    # asked for it; MailNotifier mails them (sendToInterestedUsers) and templates show the blamelist.
    first = await sqlite_db.changes.add("alice <alice@example.org>", "fix", ["a.c"], 1.0, 1.0)
    second = await sqlite_db.changes.add("bob", "more", ["b.c"], 2.0, 2.0)
    third = await sqlite_db.changes.add("alice <alice@example.org>", "again", ["a.c"], 3.0, 3.0)
    formatter = MessageFormatter(template="{{ blamelist|join(',') }}")
    generator = BuildStatusGenerator(mode="failing", message_formatter=formatter)
    build = build_dict(FAILURE, props={"changeids": [first, second, third], "owner": "carol"})
    report = await generator.generate(MasterWithChanges(sqlite_db), None, BUILD_FINISHED, build)
    assert report["users"] == ["alice <alice@example.org>", "bob", "carol"]
    assert report["body"] == "alice <alice@example.org>,bob,carol"


@pytest_twisted.ensureDeferred
async def test_a_build_without_changes_or_owner_has_no_users(sqlite_db):
    generator = BuildStatusGenerator(mode="failing")
    report = await generator.generate(MasterWithChanges(sqlite_db), None, BUILD_FINISHED,
                                      build_dict(FAILURE, props={"changeids": [999]}))
    assert report["users"] == []


@pytest_twisted.ensureDeferred
async def test_add_patch_puts_the_builds_patches_in_the_report():
    diff = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
    stamps = [{"codebase": "app", "patch": {"level": 1, "body": diff}}, {"codebase": "lib"}]
    build = build_dict(FAILURE, props={"sourcestamps": stamps, "patch": (0, "other", "sub")})
    with_patch = await BuildStatusGenerator(mode="failing", add_patch=True).generate(
        ConfiguredMaster(), None, BUILD_FINISHED, build)
    assert with_patch["patches"] == [{"body": diff, "level": 1, "subdir": None},
                                     {"body": "other", "level": 0, "subdir": "sub"}]
    without = await BuildStatusGenerator(mode="failing").generate(
        ConfiguredMaster(), None, BUILD_FINISHED, build)
    assert without["patches"] == []
