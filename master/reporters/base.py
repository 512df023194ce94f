"""``ReporterBase`` (Buildbot's ``reporters.base``): a service of ``c['services']`` whose
generators turn the master's events into reports that ``sendMessage`` sends.

The path of a report:

1. The build code publishes a build event (master/process/buildevents.py) once the build's
   row says it; a slave gone missing comes from the BotMaster's ``missing``.
2. The reporter, one event at a time (so a build's start is recorded before its end), reads
   the build as Buildbot's dict (utils.py), asks each generator for a report, and records
   the reports in the ``reports`` table, keyed by (reporter name, event): once, ever.
3. Its ``ReportSender`` sends what is recorded, retrying with backoff (sender.py).

Durability: a master that dies leaves the recorded reports pending; the reporter of the
same name sends them once the master is back.  A build whose start or end was written just
before the master died, but whose report was not recorded yet, is found again at start-up:
each reporter keeps a mark (in ``scheduler_state``, under ``reporter:<name>``): a time
before which every build start and end of this master was looked at.  At start it looks
again at the builds this master started or finished since the mark (less
``MARK_SLACK_S``), records what is missing, oldest first and a build's start before its end
(the (reporter, event) key drops the duplicates; a start is not recorded after its build's
end was), and moves the mark whenever it has no event waiting (never again in this run once
a build event failed to be handled, say the database was gone: the next start looks at it
again).  A recovered start is reported as a start (the build as it is now, not complete).
Reports sent or given up ``REPORTS_KEPT_S`` ago are deleted at a start (long after the mark
has passed them).  A reporter seen for the first time starts its mark now: it does not
report the builds of before it existed.  Missing slaves whose report was not recorded when
the master died are not reported after it (their state has moved on).

Multi-master: each master records the reports of its own builds and sends the rows it
recorded, so each report is sent by one master.
"""

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from buildfarm.master.process.buildevents import BUILD_FINISHED, BUILD_STARTED, BuildEvent
from buildfarm.master.process.properties import Properties, secret_names
from buildfarm.master.reporters.interfaces import IReporter, IReporterMaster, IReportGenerator
from buildfarm.master.reporters.sender import BACKOFF_BASE_S, BACKOFF_MAX_S, MAX_ATTEMPTS, ReportSender
from buildfarm.master.reporters.utils import build_details
from buildfarm.master.secrets.manager import SecretManager

log = Logger()

MARK_SLACK_S = 120.0  # a build's end written this long before its event still gets looked at
MARK_STATE_KEY = "mark"
MAX_NAME_CHARS = 200  # within the database's 255, with "reporter:" before it
REPORTS_KEPT_S = 7 * 24 * 3600.0  # sent and given-up reports are deleted at a start after this


class NoMaster(Exception):
    """A reporter started outside a master's service tree."""


@implementer(IReporter)
class ReporterBase(service.Service):
    """A reporter: ``generators`` (IReportGenerator) and ``sendMessage(reports)`` (subclasses).

    ``name`` identifies its reports in the database: give two reporters of one class distinct
    names.  ``backoff_base_s``, ``backoff_max_s`` and ``max_attempts`` tune its retries."""

    def __init__(self, generators=None, name: str | None = None, backoff_base_s: float = BACKOFF_BASE_S,
                 backoff_max_s: float = BACKOFF_MAX_S, max_attempts: int = MAX_ATTEMPTS):
        generators = list(generators or [])
        for generator in generators:
            if not IReportGenerator.providedBy(generator):
                raise ValueError(f"{type(self).__name__}: {generator!r} is not a report generator "
                                 "(reporters.BuildStatusGenerator, ...)")
        if name is not None and (not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS):
            raise ValueError(f"{type(self).__name__}: name must be a string of 1 to {MAX_NAME_CHARS} "
                             f"characters, not {name!r}")
        self.generators = generators
        self.name = name or type(self).__name__
        self.backoff = (backoff_base_s, backoff_max_s, max_attempts)
        self.master: IReporterMaster | None = None
        self.sender: ReportSender | None = None
        self._unsubscribe: list = []
        self._events: defer.DeferredLock = defer.DeferredLock()
        self._waiting = 0  # events received, not handled yet
        self._mark_held = False  # a build event failed to be handled: the next start looks again
        self._starting: defer.Deferred | None = None

    @property
    def state_name(self) -> str:
        return f"reporter:{self.name}"

    def startService(self):  # noqa: N802 - Twisted's name
        super().startService()
        self.master = self._find_master()
        base_s, cap_s, max_attempts = self.backoff
        self.sender = ReportSender(self.master.db, self.master.reactor, self.name, self.master.masterid,
                                   self._send, base_s, cap_s, max_attempts)
        if any(g.wanted_event_kinds for g in self.generators):
            self._unsubscribe.append(self.master.buildevents.subscribe(self._on_build_event))
        if any(g.wants_missing_slaves for g in self.generators):
            self._unsubscribe.append(self.master.botmaster.missing.subscribe(self._on_slave_missing))
        self._starting = defer.ensureDeferred(self._start())
        self._starting.addErrback(lambda f: log.failure("reporter {name}: start-up failed", f,
                                                        name=self.name))
        return None

    def stopService(self) -> defer.Deferred:  # noqa: N802 - Twisted's name
        super().stopService()
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        """Hear no more events; let the one being handled be recorded; stop the sender."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        if self._starting is not None:
            await self._starting
        await self._events.acquire()  # the event being handled is recorded
        self._events.release()
        if self.sender is not None:
            await self.sender.stop()

    def sendMessage(self, reports: list):  # noqa: N802 - Buildbot's name
        """Send ``reports``; subclasses do (a Deferred or a coroutine).  Raise
        ``ReportRejected`` to give a report up; any other error retries it later."""
        raise NotImplementedError

    async def render_secrets(self, value, properties: Properties | None = None):
        """``value`` (a token, credentials, headers: anything holding ``util.Secret`` or
        ``util.Interpolate('%(secret:...)s')``) rendered with the secrets of
        ``c['secretsProviders']``, fetched now (each attempt: a rotated secret is used at
        once), and with ``properties`` (a build's, say) if given.  A missing secret raises
        ``SecretNotFound`` (the attempt fails, and is retried)."""
        props = properties if properties is not None else Properties()
        names = secret_names(value)
        if names:
            manager = SecretManager(self.master.config.secrets_providers)
            fetched = await manager.fetch(self.master.reactor, names)
            props.add_secrets(fetched.values, fetched.missing)
        return props.render(value)

    # -- start-up --------------------------------------------------------------------------

    def _find_master(self) -> IReporterMaster:
        node = self.parent
        while node is not None and not IReporterMaster.providedBy(node):
            node = node.parent
        if node is None:
            raise NoMaster(f"reporter {self.name} runs outside a master (put it in c['services'])")
        return node

    async def _start(self) -> None:
        """Look again at the builds started or finished since the mark, then send what is
        pending."""
        if any(g.wanted_event_kinds for g in self.generators):
            await self._events.run(self._catch_up)
        self.sender.wake()

    async def _catch_up(self) -> None:
        db, now = self.master.db, self.master.reactor.seconds()
        mark = await db.state.get(self.state_name, MARK_STATE_KEY)
        if mark is not None:
            events = await self._events_since(mark - MARK_SLACK_S)
            recorded = await db.reports.recorded_events(self.name, [_event_key(*e) for e in events])
            for kind, buildid in events:
                if _event_key(kind, buildid) in recorded or (
                        kind == BUILD_STARTED and _event_key(BUILD_FINISHED, buildid) in recorded):
                    continue
                log.info("reporter {name}: looking again at the {kind} of build {id}, not "
                         "recorded before the master stopped", name=self.name, id=buildid, kind=kind)
                await self._handle_build_event(BuildEvent(kind, buildid), wake=False)
        await db.state.set(self.state_name, MARK_STATE_KEY, now)
        deleted = await db.reports.delete_done_before(self.name, now - REPORTS_KEPT_S)
        if deleted:
            log.info("reporter {name}: {n} old report(s) deleted", name=self.name, n=deleted)

    async def _events_since(self, since: float) -> list[tuple[str, int]]:
        """(kind, buildid) of the build starts and ends at or after ``since`` that a
        generator wants, in the order they happened (a build's start before its end)."""
        wanted = {kind for g in self.generators for kind in g.wanted_event_kinds}
        timed = []
        for buildid, started_at, complete_at in await self.master.db.reports.builds_since(
                self.master.masterid, since):
            if BUILD_STARTED in wanted and started_at >= since:
                timed.append((started_at, 0, buildid, BUILD_STARTED))
            if BUILD_FINISHED in wanted and complete_at is not None and complete_at >= since:
                timed.append((complete_at, 1, buildid, BUILD_FINISHED))
        return [(kind, buildid) for _, _, buildid, kind in sorted(timed)]

    # -- events ----------------------------------------------------------------------------

    def _on_build_event(self, event: BuildEvent) -> defer.Deferred | None:
        if not any(event.kind in g.wanted_event_kinds for g in self.generators):
            return None
        self._waiting += 1
        d = self._events.run(lambda: defer.ensureDeferred(self._handle_queued(event)))
        d.addErrback(lambda f: log.failure("reporter {name}: {event} not reported", f,
                                           name=self.name, event=event))
        return None  # the build goes on: nothing it waits for

    async def _handle_queued(self, event: BuildEvent) -> None:
        try:
            await self._handle_build_event(event)
        except Exception:
            self._mark_held = True
            raise
        finally:
            self._waiting -= 1
        if self._waiting == 0 and self.running and not self._mark_held:
            # Every build this master finished before now has been looked at.
            await self.master.db.state.set(self.state_name, MARK_STATE_KEY, self.master.reactor.seconds())

    async def _handle_build_event(self, event: BuildEvent, wake: bool = True) -> None:
        generators = [g for g in self.generators if event.kind in g.wanted_event_kinds]
        build = await build_details(self.master, event.buildid, **_merged_wants(generators))
        if build is None:
            return
        if event.kind == BUILD_STARTED:
            # Read once the build may have gone on: its start is reported as a start.
            build.update(complete=False, complete_at=None, results=None)
        reports = []
        for generator in generators:
            report = await generator.generate(self.master, self, event.kind, build)
            if report is not None:
                reports.append(report)
        await self._record(_event_key(event.kind, event.buildid), reports, wake)

    def _on_slave_missing(self, slave) -> None:
        d = self._events.run(lambda: defer.ensureDeferred(self._handle_missing(slave)))
        d.addErrback(lambda f: log.failure("reporter {name}: missing slave {slave} not reported", f,
                                           name=self.name, slave=slave.name))
        return None

    async def _handle_missing(self, slave) -> None:
        reports = []
        for generator in self.generators:
            if generator.wants_missing_slaves:
                report = await generator.generate_missing(self.master, self, slave)
                if report is not None:
                    reports.append(report)
        await self._record(f"slave:{slave.name}:missing:{slave.gone_since!r}", reports)

    async def _record(self, event: str, reports: list, wake: bool = True) -> None:
        if not reports:
            return
        now = self.master.reactor.seconds()
        if await self.master.db.reports.record(self.name, event, self.master.masterid, reports, now):
            log.info("reporter {name}: report of {event} recorded", name=self.name, event=event)
            if wake:
                self.sender.wake()

    async def _send(self, reports: list) -> None:
        await defer.maybeDeferred(self.sendMessage, reports)


def _event_key(kind: str, buildid: int) -> str:
    return f"build:{buildid}:{kind}"


def _merged_wants(generators: list) -> dict:
    merged: dict[str, bool] = {}
    for generator in generators:
        for key, value in generator.want().items():
            merged[key] = merged.get(key, False) or value
    return merged
