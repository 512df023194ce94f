"""The two systems under test, behind one interface: a buildfarm master with buildfarm
slaves, and a stock Buildbot 4.3 master with stock buildbot-worker 4.3 workers.

Both get the same ``master.cfg`` body (Buildbot 4 names, which buildfarm accepts), differing
only in the import line and the ports/web preamble; both are driven the same way: builds are
forced over HTTP and their completion is seen by polling the HTTP API.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_DIR, "tests"))

from fixtures.daemons import Fleet, read_pid, wait_for  # noqa: E402
from fixtures.stock_buildbot import StockMasters  # noqa: E402

OUR_PYTHON = os.path.join(REPO_DIR, ".venv", "bin", "python")
STOCK_PYTHON = os.path.join(REPO_DIR, ".venv-interop", "bin", "python")
PASSWORD = "pass"
FORCE_CONCURRENCY = 16
ATTACH_DEADLINE_S = 60.0
RESULT_NAMES = ("success", "warnings", "failure", "skipped", "exception", "retry", "cancelled")
PREPARATION_STEP = "worker_preparation"  # Buildbot's step 0 of every build, not configured


@dataclass(frozen=True)
class Shell:
    """A ShellCommand step running ``argv``."""

    argv: Sequence[str]

    def render(self) -> str:
        return f"steps.ShellCommand(command={list(self.argv)!r}, logEnviron=False)"


@dataclass(frozen=True)
class Upload:
    """A FileUpload step: slave's ``src`` (relative to the build dir) to the master's ``dest``."""

    src: str
    dest: str

    def render(self) -> str:
        return f"steps.FileUpload(workersrc={self.src!r}, masterdest={self.dest!r})"


@dataclass(frozen=True)
class Download:
    """A FileDownload step: the master's ``src`` to the slave's ``dest``."""

    src: str
    dest: str

    def render(self) -> str:
        return f"steps.FileDownload(mastersrc={self.src!r}, workerdest={self.dest!r})"


@dataclass(frozen=True)
class Builder:
    """A builder on the named slaves, with a list of steps."""

    name: str
    slavenames: Sequence[str]
    steps: Sequence[Shell | Upload | Download]


CONFIG_BODY = """\
c['collapseRequests'] = False
c['workers'] = [worker.Worker(name, {password!r}) for name in {slavenames!r}]
c['builders'] = [
{builders}
]
c['schedulers'] = {schedulers}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
"""

OUR_PREAMBLE = """\
from buildfarm.master.plugins import schedulers, steps, util, worker
c = BuildmasterConfig = {{}}
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
"""

STOCK_PREAMBLE = """\
from buildbot.plugins import schedulers, steps, util, worker
c = BuildmasterConfig = {{}}
c['buildbotNetUsageData'] = None
c['protocols'] = {{'pb': {{'port': 'tcp:{pb_port}:interface=127.0.0.1'}}}}
c['www'] = {{'port': 'tcp:{www_port}:interface=127.0.0.1', 'plugins': {{}}}}
"""


def render_config(preamble: str, slavenames: Sequence[str], builders: Sequence[Builder],
                  pb_port: int | str, www_port: int | str) -> str:
    """A complete master.cfg: the system's preamble and the shared body."""
    builder_lines = ",\n".join(
        f"    util.BuilderConfig(name={b.name!r}, workernames={list(b.slavenames)!r}, "
        f"factory=util.BuildFactory([{', '.join(s.render() for s in b.steps)}]))"
        for b in builders)
    return (preamble.format(pb_port=pb_port, www_port=www_port)
            + CONFIG_BODY.format(password=PASSWORD, slavenames=list(slavenames), builders=builder_lines,
                                 schedulers=render_schedulers([b.name for b in builders])))


def render_schedulers(builder_names: list[str]) -> str:
    if not builder_names:
        return "[]"
    return f"[schedulers.ForceScheduler(name='force', builderNames={builder_names!r})]"


class System:
    """One system under test: its master, its slaves, and an API client.  Subclasses say
    how to start them and how their API spells things."""

    label = "?"
    python = sys.executable

    def __init__(self, root: str):
        self.root = root
        self.master = None
        self.slave_basedirs: list[str] = []

    # -- processes -------------------------------------------------------------------------

    @property
    def master_pid(self) -> int:
        pid = read_pid(self.master.basedir)
        assert pid is not None, f"no twistd.pid in {self.master.basedir}"
        return pid

    @property
    def pb_port(self) -> int:
        return self.master.pb_port

    def slave_pid(self, index: int = 0) -> int:
        pid = read_pid(self.slave_basedirs[index])
        assert pid is not None, f"no twistd.pid in {self.slave_basedirs[index]}"
        return pid

    def start(self, slavenames: Sequence[str], builders: Sequence[Builder],
              start_slaves: Sequence[str] = ()) -> None:
        """Start a master with these slaves and builders, then the named slave daemons,
        and wait until they attached."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    # -- API -------------------------------------------------------------------------------

    def force(self, builder: str) -> int:
        """Request a build of ``builder`` over HTTP; its build request id."""
        raise NotImplementedError

    def force_many(self, builder: str, count: int) -> list[int]:
        """``count`` build requests, sent concurrently."""
        with ThreadPoolExecutor(FORCE_CONCURRENCY) as pool:
            return list(pool.map(lambda _: self.force(builder), range(count)))

    def request_done(self, brid: int) -> str | None:
        """None while the request is incomplete, else its result's lower-case name."""
        raise NotImplementedError

    def build_of(self, brid: int) -> int | None:
        """The id of the (first) build of a request, once it started."""
        raise NotImplementedError

    def step_states(self, buildid: int) -> list[tuple[bool, bool]]:
        """(started, complete) of each configured step of a build, in order."""
        raise NotImplementedError

    def step_log(self, buildid: int, step: int) -> str:
        """The text of the ``stdio`` log of the build's ``step``-th configured step."""
        raise NotImplementedError

    def any_incomplete(self, builder: str) -> bool:
        """Whether ``builder`` has a build request that is not complete."""
        raise NotImplementedError

    def outcomes(self, builder: str) -> collections.Counter:
        """How many build requests of ``builder`` ended with each result (lower-case name;
        "incomplete" for those not complete yet)."""
        raise NotImplementedError

    def attached(self) -> int:
        """How many slaves the master's API reports attached."""
        raise NotImplementedError


class BuildfarmSystem(System):
    """A buildfarm master (``buildmaster`` CLI) with buildfarm slaves (``buildslave`` CLI)."""

    label = "buildfarm"
    python = OUR_PYTHON
    extra_config = ""  # master.cfg lines after the shared body (a workload's own additions)

    def __init__(self, root: str):
        super().__init__(root)
        self.fleet = Fleet(root)

    def start(self, slavenames, builders, start_slaves=()):
        self.master = self.fleet.master(config=lambda pb, www: render_config(
            OUR_PREAMBLE, slavenames, builders, pb, www) + self.extra_config)
        for name in start_slaves:
            self.slave_basedirs.append(self.fleet.slave(self.master, name, PASSWORD).basedir)
        for name in start_slaves:
            self.master.wait_attached(name, ATTACH_DEADLINE_S)

    def stop(self):
        self.fleet.stop_all()

    def _get(self, path: str) -> dict:
        return self.master.get("/api/v1" + path)

    def _get_every(self, path: str, key: str) -> list:
        """Every item of a paged list, following ``meta.next`` (pages hold 1000 at most)."""
        page = self._get(path + ("&" if "?" in path else "?") + "limit=1000")
        items = page[key]
        while page["meta"]["next"]:
            page = self.master.get(page["meta"]["next"])
            items += page[key]
        return items

    def force(self, builder):
        return self.master.force(builder)

    def request_done(self, brid):
        request = self._get(f"/buildrequests/{brid}")
        return request["result"] if request["complete"] else None

    def build_of(self, brid):
        buildids = self._get(f"/buildrequests/{brid}")["buildids"]
        return buildids[0] if buildids else None

    def step_states(self, buildid):
        return [(s["started_at"] is not None, bool(s["complete"]))
                for s in self._get(f"/builds/{buildid}")["steps"]]

    def step_log(self, buildid, step):
        status, body = self.master.request("GET", f"/api/v1/builds/{buildid}/steps/{step}/logs/stdio")
        assert status == 200, f"log of build {buildid} step {step}: {status} {body[:200]!r}"
        return body.decode(errors="replace")

    def any_incomplete(self, builder):
        return bool(self._get(f"/buildrequests?builder={builder}&complete=false&limit=1")["buildrequests"])

    def outcomes(self, builder):
        requests = self._get_every(f"/buildrequests?builder={builder}", "buildrequests")
        return collections.Counter(r["result"] if r["complete"] else "incomplete" for r in requests)

    def attached(self):
        return sum(bool(s["connected"]) for s in self._get_every("/slaves", "slaves"))


class BuildbotSystem(System):
    """A stock Buildbot 4.3 master (``buildbot`` CLI) with stock buildbot-worker 4.3."""

    label = "Buildbot 4.3"
    python = STOCK_PYTHON

    def __init__(self, root: str):
        super().__init__(root)
        self.masters = StockMasters(root)
        self.fleet = Fleet(root)
        self._builder_ids: dict[str, int] = {}

    def start(self, slavenames, builders, start_slaves=()):
        self.master = self.masters.start(render_config(
            STOCK_PREAMBLE, slavenames, builders, "{pb_port}", "{www_port}"))
        for name in start_slaves:
            self.slave_basedirs.append(self.fleet.stock_worker(self.master, name, PASSWORD).basedir)
        for name in start_slaves:
            self.master.wait_worker_connected(name, ATTACH_DEADLINE_S)
        for basedir in self.slave_basedirs:  # twistd.pid appears a moment after the worker attached
            wait_for(lambda basedir=basedir: read_pid(basedir), f"twistd.pid in {basedir}")

    def stop(self):
        self.fleet.stop_all()
        self.masters.stop_all()

    def _builder_id(self, builder: str) -> int:
        if builder not in self._builder_ids:
            self._builder_ids[builder] = self.master.builder_id(builder)
        return self._builder_ids[builder]

    def force(self, builder):
        builderid = self._builder_id(builder)
        _, brids = self.master.rpc("/forceschedulers/force", "force", builderid=builderid)
        return int(brids[str(builderid)])

    def request_done(self, brid):
        [request] = self.master.get(f"/buildrequests/{brid}")["buildrequests"]
        return RESULT_NAMES[request["results"]] if request["complete"] else None

    def build_of(self, brid):
        builds = self.master.builds_of_request(brid)
        return builds[0]["buildid"] if builds else None

    def _configured_steps(self, buildid: int) -> list[dict]:
        """The build's steps without the ``worker_preparation`` step Buildbot puts first."""
        return [s for s in self.master.steps(buildid) if s["name"] != PREPARATION_STEP]

    def step_states(self, buildid):
        return [(s["started_at"] is not None, bool(s["complete"])) for s in self._configured_steps(buildid)]

    def step_log(self, buildid, step):
        return self.master.step_log(buildid, self._configured_steps(buildid)[step]["number"])

    def any_incomplete(self, builder):
        path = f"/builders/{self._builder_id(builder)}/buildrequests?complete=false&limit=1"
        return bool(self.master.get(path)["buildrequests"])

    def outcomes(self, builder):
        path = f"/builders/{self._builder_id(builder)}/buildrequests?field=results&field=complete"
        requests = self.master.get(path)["buildrequests"]
        return collections.Counter(RESULT_NAMES[r["results"]] if r["complete"] else "incomplete"
                                   for r in requests)

    def attached(self):
        return sum(bool(w["connected_to"]) for w in self.master.workers())


SYSTEMS = (BuildfarmSystem, BuildbotSystem)


@contextlib.contextmanager
def started(system_class: type[System], root: str, slavenames: Sequence[str], builders: Sequence[Builder],
            start_slaves: Sequence[str] = ()):
    """A started system, stopped when the block ends (also when its start fails half-way)."""
    system = system_class(os.path.join(root, system_class.__name__))
    os.makedirs(system.root)
    try:
        system.start(slavenames, builders, start_slaves)
        yield system
    finally:
        system.stop()
