"""In-memory doubles of what schedulers use of the master, for fast tests of their logic.

``FakeMaster`` has a ``task.Clock`` as its reactor, a ``FakeDB`` with the ``buildsets``,
``buildrequests``, ``changes``, ``state`` and ``builders`` calls schedulers make (each
answering at once), and a BotMaster stand-in counting ``maybe_start_builds`` calls.  Each
double declares the interface of ``interfaces.py`` it stands in for, and a test checks the
doubles and the real master's objects against the same interfaces (``verifyObject``).  The
real database components are tested against a real database elsewhere.
"""

import copy
import itertools
from dataclasses import dataclass, field

from twisted.internet import task
from zope.interface import implementer

from buildfarm.common.results import CANCELLED, worst_result
from buildfarm.master.mq.bus import EventBus
from buildfarm.master.schedulers.interfaces import (
    IBuildersTable,
    IBuildRequestsTable,
    IBuildsetsTable,
    IChangesTable,
    ISchedulerBotMaster,
    ISchedulerDB,
    ISchedulerMaster,
    ISchedulerStateTable,
)


@implementer(IBuildsetsTable)
class FakeBuildsets:
    def __init__(self, db: "FakeDB"):
        self.db = db
        self.rows: dict[int, dict] = {}
        self.outbox: list = []  # the messages a real database would have written with the buildsets
        self._ids = itertools.count(1)

    async def add(self, scheduler, reason, properties, builderids, submitted_at, priority=0,
                  parent_buildid=None, messages=None):
        bsid = next(self._ids)
        brids = {}
        for builderid in builderids:
            brids[builderid] = self.db.buildrequests.new(bsid, builderid, submitted_at, priority)
        self.rows[bsid] = {
            "bsid": bsid, "scheduler": scheduler, "reason": reason,
            "properties": copy.deepcopy(properties), "submitted_at": submitted_at,
            "complete": False, "complete_at": None, "results": None,
            "parent_buildid": parent_buildid, "buildrequestids": list(brids.values()),
            "priority": priority,
        }
        if messages is not None:
            self.outbox.extend(messages(bsid, brids))
        return bsid, brids

    async def get(self, bsid):
        row = self.rows.get(bsid)
        return copy.deepcopy(row) if row else None

    async def complete_if_done(self, bsid, now, messages=None):
        row = self.rows[bsid]
        requests = [self.db.buildrequests.rows[b] for b in row["buildrequestids"]]
        if row["complete"] or not all(r["complete"] for r in requests):
            return None
        results = requests[0]["results"]
        for request in requests[1:]:
            results = worst_result(results, request["results"])
        row.update(complete=True, complete_at=now, results=results)
        if messages is not None:
            self.outbox.extend(messages(results))
        return results


@implementer(IBuildRequestsTable)
class FakeBuildRequests:
    def __init__(self):
        self.rows: dict[int, dict] = {}
        self._ids = itertools.count(1)

    def new(self, bsid, builderid, submitted_at, priority) -> int:
        brid = next(self._ids)
        self.rows[brid] = {"buildrequestid": brid, "buildsetid": bsid, "builderid": builderid,
                           "submitted_at": submitted_at, "priority": priority,
                           "complete": False, "results": None}
        return brid

    async def get(self, brid):
        row = self.rows.get(brid)
        return dict(row) if row else None

    def finish(self, brid, results) -> dict:
        """What the BotMaster does when a build of the request ends (test helper)."""
        self.rows[brid].update(complete=True, results=results)
        return dict(self.rows[brid])

    async def cancel(self, brid, now):
        row = self.rows[brid]
        if row["complete"] or row.get("claimed"):
            return False
        row.update(complete=True, results=CANCELLED)
        return True


@implementer(IChangesTable)
class FakeChanges:
    def __init__(self):
        self.rows: dict[int, dict] = {}
        self._ids = itertools.count(1)

    async def add(self, author, comments, files, when_timestamp, created_at, branch=None,
                  revision=None, repository="", project="", codebase="", category=None,
                  committer=None, properties=None):
        changeid = next(self._ids)
        self.rows[changeid] = {
            "changeid": changeid, "author": author, "committer": committer, "comments": comments,
            "branch": branch, "revision": revision, "repository": repository, "project": project,
            "codebase": codebase, "category": category, "when_timestamp": when_timestamp,
            "files": list(files), "properties": dict(properties or {}), "created_at": created_at,
        }
        return changeid

    async def get(self, changeid):
        row = self.rows.get(changeid)
        return copy.deepcopy(row) if row else None

    async def get_after(self, changeid):
        return [copy.deepcopy(self.rows[c]) for c in sorted(self.rows) if c > changeid]


@implementer(ISchedulerStateTable)
class FakeState:
    def __init__(self):
        self.values: dict[tuple[str, str], object] = {}

    async def get(self, scheduler, key, default=None):
        return copy.deepcopy(self.values.get((scheduler, key), default))

    async def set(self, scheduler, key, value):
        self.values[(scheduler, key)] = copy.deepcopy(value)


@implementer(IBuildersTable)
class FakeBuilders:
    def __init__(self):
        self.ids: dict[str, int] = {}

    async def find_or_create(self, name):
        return self.ids.setdefault(name, len(self.ids) + 1)


@implementer(ISchedulerDB)
class FakeDB:
    def __init__(self):
        self.buildsets = FakeBuildsets(self)
        self.buildrequests = FakeBuildRequests()
        self.changes = FakeChanges()
        self.state = FakeState()
        self.builders = FakeBuilders()


@dataclass(frozen=True)
class FakeBuilder:
    """A builder as the schedulers see it: its name and id (in the configuration and the
    BotMaster alike)."""

    name: str
    builderid: int


@implementer(ISchedulerBotMaster)
@dataclass
class FakeBotMaster:
    builders: dict = field(default_factory=dict)
    running_builds: dict = field(default_factory=dict)
    wakeups: int = 0

    def maybe_start_builds(self):
        self.wakeups += 1


class FakeConfig:
    """The configuration's ``schedulers`` and ``builders`` (named ``builders``, ids 1, 2, ...);
    one master (no ``multiMaster``: timed schedulers run without a lease)."""

    multi_master = False

    def __init__(self, schedulers=(), builders=()):
        self.schedulers = list(schedulers)
        self.builders = [FakeBuilder(name, number) for number, name in enumerate(builders, 1)]

    def builder(self, name):
        return next((b for b in self.builders if b.name == name), None)


@implementer(ISchedulerMaster)
class FakeMaster:
    """A master with a Clock, a FakeDB and builders ``builder_names`` (ids 1, 2, ...)."""

    def __init__(self, builder_names=("a", "b", "c"), start_time: float = 1_000_000.0):
        self.reactor = task.Clock()
        self.reactor.advance(start_time)
        self.masterid = 1
        self.db = FakeDB()
        self.botmaster = FakeBotMaster()
        self.config = FakeConfig(builders=builder_names)
        for builder in self.config.builders:
            self.botmaster.builders[builder.name] = builder
            self.db.builders.ids[builder.name] = builder.builderid
        self.scheduler = None  # the SchedulerManager under test (``started_manager``)
        self.mq = EventBus()  # the real in-process event bus

    def buildsets(self, scheduler: str | None = None) -> list[dict]:
        """The buildsets added so far (of one scheduler), oldest first."""
        rows = self.db.buildsets.rows.values()
        return [r for r in rows if scheduler is None or r["scheduler"] == scheduler]


def result_of(awaitable):
    """The result of a coroutine or Deferred that completes at once (as with ``FakeDB``)."""
    from twisted.internet import defer
    from twisted.python.failure import Failure

    d = defer.ensureDeferred(awaitable)
    results: list = []
    d.addBoth(results.append)
    if not results:
        raise AssertionError(f"{awaitable!r} did not complete at once")
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def started_manager(master: FakeMaster, *schedulers):
    """A SchedulerManager on ``master`` running ``schedulers``."""
    from buildfarm.master.schedulers.manager import SchedulerManager

    manager = SchedulerManager(master)
    master.scheduler = manager
    master.config.schedulers = list(schedulers)
    result_of(manager.reconfigService(master.config))
    return manager
