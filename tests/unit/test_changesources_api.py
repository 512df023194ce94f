"""Making pollers poll now: ``GET /api/v1/changesources``, ``POST
/api/v1/changesources/<name>/poll`` and Buildbot's ``poller`` change hook dialect, on the web
site of a real master built in memory whose GitPoller polls a real repository made by the
test; and ``PollingChangeSource.poll_now``'s queueing on a poller whose polls the test holds."""

import base64
import json
from urllib.parse import quote

import pytest
import pytest_twisted
from twisted.internet import defer, task
from zope.interface.verify import verifyObject

from buildfarm.master.changes.base import PollingChangeSource
from buildfarm.master.changes.gitpoller import GitPoller
from buildfarm.master.changes.hooks import (
    HookError,
    HookRequest,
    pollers_to_poll,
    unauthenticated_dialects,
    validate_dialects,
)
from buildfarm.master.changes.interfaces import IPollingChangeSource
from buildfarm.master.www import changesources
from buildfarm.master.www.site import WWWService
from fixtures.memoryhttp import render
from fixtures.memorymaster import eventually, start_memory_master
from fixtures.pollers import PollerMaster
from fixtures.repos import GitRepo

ADMIN = {"authorization": "Basic " + base64.b64encode(b"admin:adm1n").decode()}
READER = {"authorization": "Basic " + base64.b64encode(b"reader:r3ad").decode()}
POLL_INTERVAL_S = 300
NOW = 1000.0

SOURCES_CFG = """\
from buildfarm.master.plugins import changes, slaves, schedulers, steps, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': 9989}}}}
c['builders'] = [util.BuilderConfig(name='runtests', slavenames=['bs1'],
                                    factory=util.BuildFactory([steps.ShellCommand(command=['true'])]))]
c['change_source'] = [
    changes.GitPoller({url!r}, workdir='gitpoller-workdir', branch='main', pollInterval={interval}),
    changes.GitPoller({missing!r}, name='broken', branch='main', pollInterval={interval}),
    changes.GitPoller({url!r}, name='other', workdir='other-workdir', branch='main', pollInterval={interval}),
    changes.PBChangeSource(user='alice', passwd='sekrit'),
]
c['www'] = {{'port': 8010, 'change_hook_dialects': {{'poller': {{'allowed': [{url!r}, 'broken']}}}}}}
c['users'] = [util.User('admin', password='adm1n', scopes=['*']),
              util.User('reader', password='r3ad', scopes=['changes:read'])]
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
"""


@pytest.fixture
def repo(tmp_path):
    repo = GitRepo(str(tmp_path / "hello"))
    repo.commit("README", "hello\n", "first")
    return repo


@pytest_twisted.async_yield_fixture
async def master(tmp_path, repo):
    basedir = tmp_path / "master"
    basedir.mkdir()
    cfg = SOURCES_CFG.format(url=repo.url, missing="file://" + str(tmp_path / "missing"),
                             interval=POLL_INTERVAL_S)
    started = await start_memory_master(basedir, cfg, now=NOW)
    yield started
    if started.running:
        await started.stopService()


async def request(master, method: str, path: str, headers: dict | None = None, args: dict | None = None):
    site = WWWService(master).make_site().resource
    response = await render(site, method, path, headers=headers, args=args)
    return response.code, json.loads(response.body)


def poll_path(name: str) -> str:
    # What twisted.web hands klein for /api/v1/changesources/<name escaped>/poll: the
    # segments unescaped (tests/fixtures/memoryhttp.py does not unescape).
    return f"/api/v1/changesources/{name}/poll"


@pytest_twisted.ensureDeferred
async def test_the_list_names_each_source_its_kind_and_a_pollers_state(master, repo):
    status, body = await request(master, "GET", "/api/v1/changesources", READER)
    assert status == 200
    git, broken, other, pb = body["changesources"]
    assert git == {"name": repo.url, "kind": "GitPoller", "poller": True, "polling": False,
                   "last_poll": None, "last_error": None, "polled_here": True,
                   "next_poll": NOW + POLL_INTERVAL_S, "poll_interval": POLL_INTERVAL_S,
                   "poll_path": "/api/v1/changesources/" + quote(repo.url, safe="") + "/poll"}
    assert (broken["name"], other["name"]) == ("broken", "other")
    assert pb == {"name": pb["name"], "kind": "PBChangeSource", "poller": False}


@pytest_twisted.ensureDeferred
async def test_poll_now_records_the_head_then_reports_a_new_commit_without_waiting_the_interval(
        master, repo):
    status, body = await request(master, "POST", poll_path(repo.url), ADMIN)
    assert status == 200, body
    assert body["finished"] is True
    assert body["changesource"]["last_poll"] == NOW and body["changesource"]["last_error"] is None
    assert await master.db.changes.get_all() == []  # the first poll records where main stands
    sha = repo.commit("hello.py", "x = 1\n", "second")
    status, body = await request(master, "POST", poll_path(repo.url), ADMIN)
    assert status == 200
    [change] = await master.db.changes.get_all()
    assert (change["revision"], change["branch"]) == (sha, "main")
    assert master.reactor.seconds() == NOW  # nothing waited for the poll interval


@pytest_twisted.ensureDeferred
async def test_a_failed_poll_is_answered_with_its_error_and_kept_in_the_list(master):
    status, body = await request(master, "POST", poll_path("broken"), ADMIN)
    assert status == 200
    assert "exited with 128" in body["changesource"]["last_error"]
    _, listed = await request(master, "GET", "/api/v1/changesources", READER)
    assert "exited with 128" in listed["changesources"][1]["last_error"]


@pytest_twisted.ensureDeferred
async def test_poll_now_of_an_unknown_source_or_of_one_that_does_not_poll_is_a_json_error(master):
    status, body = await request(master, "POST", poll_path("nosuch"), ADMIN)
    message = "no change source named 'nosuch'"
    assert (status, body) == (404, {"error": message, "message": message})
    pb_name = master.changes.sources[3].name
    status, body = await request(master, "POST", poll_path(pb_name), ADMIN)
    assert status == 400 and "PBChangeSource: it does not poll" in body["error"]


@pytest_twisted.ensureDeferred
async def test_poll_now_needs_its_scope_and_is_audited(master, repo):
    status, body = await request(master, "POST", poll_path("other"), READER)
    assert (status, body["scope"]) == (403, "changes:poll:other")
    await request(master, "POST", poll_path("other"), ADMIN)
    done, refused = await master.db.audit.get_all(limit=2)
    assert (done["user"], done["scope"], done["outcome"], done["status"]) == (
        "admin", "changes:poll:other", "done", 200)
    assert (refused["user"], refused["outcome"], refused["status"]) == ("reader", "refused", 403)


# -- the poller change hook ------------------------------------------------------------------

async def first_poll_done(master, name: str) -> bool:
    return master.changes.named(name).poll_status()["last_poll"] is not None


@pytest_twisted.ensureDeferred
async def test_the_poller_hook_polls_the_poller_it_names(master, repo):
    status, body = await request(master, "POST", "/change_hook/poller", args={"poller": repo.url})
    assert (status, body) == (202, {"polling": [repo.url]})
    await eventually(lambda: first_poll_done(master, repo.url), "the poll the hook asked for")
    assert not await first_poll_done(master, "broken")
    [row] = await master.db.audit.get_all(limit=1)
    assert (row["surface"], row["scope"], row["status"]) == ("change_hook", "change_hook:poller", 202)


@pytest_twisted.ensureDeferred
async def test_the_poller_hook_without_a_name_polls_every_allowed_poller(master, repo):
    status, body = await request(master, "POST", "/change_hook/poller")
    assert (status, body) == (202, {"polling": [repo.url, "broken"]})  # 'other' is not allowed
    await eventually(lambda: first_poll_done(master, "broken"), "the allowed pollers' polls")
    assert not await first_poll_done(master, "other")


@pytest_twisted.ensureDeferred
async def test_the_poller_hook_refuses_a_poller_it_does_not_allow_and_polls_nothing(master, repo):
    status, body = await request(master, "POST", "/change_hook/poller", args={"poller": "other"})
    assert (status, body) == (400, {"error": "Could not find pollers: other"})
    assert not any(s.poll_status()["polling"] for s in master.changes.sources[:3])


def test_pollers_to_poll_without_allowed_takes_every_poller():
    asked = HookRequest({}, b"", {"poller": ["b"]})
    assert pollers_to_poll({}, asked, ["a", "b"]) == ["b"]
    assert pollers_to_poll({}, HookRequest({}, b"", {}), ["a", "b"]) == ["a", "b"]
    with pytest.raises(HookError, match="Could not find pollers: c"):
        pollers_to_poll({}, HookRequest({}, b"", {"poller": ["c"]}), ["a", "b"])


def test_the_poller_dialects_allowed_option_is_checked():
    assert validate_dialects({"poller": {"allowed": ["a"]}}) == ({"poller": {"allowed": ["a"]}}, [])
    assert validate_dialects({"poller": True}) == ({"poller": {}}, [])
    _, errors = validate_dialects({"poller": {"allowed": "a"}})
    assert errors == ["change hook dialect 'poller': 'allowed' must be a list of poller names"]
    _, errors = validate_dialects({"poller": {"secret": "x"}})
    assert errors == ["change hook dialect 'poller': option 'secret' is not supported by buildfarm"]


# -- poll_now: one poll at a time, a caller's poll starts after its call -----------------------

class HeldPoller(PollingChangeSource):
    """A poller whose polls last until the test releases them."""

    kind = "HeldPoller"

    def __init__(self):
        super().__init__("held", pollInterval=60)
        self.started: list[defer.Deferred] = []

    async def poll(self) -> None:
        release: defer.Deferred = defer.Deferred()
        self.started.append(release)
        await release


@pytest.fixture
def held(sqlite_db, tmp_path):
    poller = HeldPoller()
    poller.activate(PollerMaster(sqlite_db, str(tmp_path)))
    poller.startService()
    yield poller
    for release in poller.started:
        if not release.called:
            release.callback(None)
    poller.stopService()


def test_a_poller_provides_ipollingchangesource(held):
    assert verifyObject(IPollingChangeSource, held)


def test_poll_now_during_a_poll_queues_one_more_that_later_callers_share(held):
    first = held.poll_now()
    assert len(held.started) == 1 and held.poll_status()["polling"]
    second, third = held.poll_now(), held.poll_now()
    assert len(held.started) == 1  # one poll at a time
    held.started[0].callback(None)
    assert first.called and not second.called
    assert len(held.started) == 2  # the queued one started once the first finished
    held.started[1].callback(None)
    assert second.called and third.called and len(held.started) == 2
    assert second.result["last_poll"] == held.master.reactor.seconds()


def test_the_loops_poll_and_poll_now_never_overlap(held):
    held.master.reactor.advance(60)  # the loop's poll starts
    asked = held.poll_now()
    assert len(held.started) == 1
    held.started[0].callback(None)
    assert len(held.started) == 2 and not asked.called
    held.started[1].callback(None)
    assert asked.called


def test_poll_now_of_a_stopped_poller_fails(held):
    held.stopService()
    failure = []
    held.poll_now().addErrback(failure.append)
    assert failure and "is not running" in failure[0].getErrorMessage()


def test_poll_within_answers_when_the_wait_runs_out_and_the_poll_goes_on(held):
    clock = task.Clock()
    answered = defer.ensureDeferred(changesources.poll_within(held, clock, wait_s=30))
    clock.advance(29)
    assert not answered.called
    clock.advance(1)
    assert answered.result is False
    held.started[0].callback(None)
    assert held.poll_status()["last_poll"] is not None


def test_poll_within_answers_true_once_the_poll_finished(held):
    clock = task.Clock()
    answered = defer.ensureDeferred(changesources.poll_within(held, clock, wait_s=30))
    held.started[0].callback(None)
    assert answered.result is True and clock.getDelayedCalls() == []


def test_a_git_pollers_status_before_it_runs(sqlite_db, tmp_path):
    poller = GitPoller("file:///nowhere", branch="main", pollInterval=60)
    poller.activate(PollerMaster(sqlite_db, str(tmp_path)))
    assert poller.poll_status()["next_poll"] is None and poller.poll_status()["last_poll"] is None


def test_the_poller_dialect_is_not_warned_about_as_a_hook_without_a_secret():
    assert unauthenticated_dialects({"poller": {}, "base": {}}) == ["base"]


def test_poll_within_fails_for_a_poller_stopped_in_between(held):
    held.stopService()
    clock = task.Clock()
    answered = defer.ensureDeferred(changesources.poll_within(held, clock, wait_s=30))
    failure = []
    answered.addErrback(failure.append)
    assert failure and failure[0].check(RuntimeError) and clock.getDelayedCalls() == []


@pytest_twisted.ensureDeferred
async def test_a_pollers_status_says_when_another_master_holds_its_source(sqlite_db, repo, tmp_path):
    first = PollerMaster(sqlite_db, str(tmp_path / "m1"), masterid=1, multi_master=True)
    second = PollerMaster(sqlite_db, str(tmp_path / "m2"), masterid=2, multi_master=True)
    mine, theirs = GitPoller(repo.url, branch="main"), GitPoller(repo.url, branch="main")
    mine.activate(first)
    theirs.activate(second)
    assert await mine.poll_if_ours() and not await theirs.poll_if_ours()
    assert mine.poll_status()["polled_here"] and mine.poll_status()["last_poll"] == first.reactor.seconds()
    assert theirs.poll_status()["polled_here"] is False and theirs.poll_status()["last_poll"] is None
