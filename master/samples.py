"""``Sampler``: the fleet and the queue over time, recorded by the master each minute.

Each ``SAMPLE_INTERVAL_S`` of the master's clock it records (``db.samples``, rolled up per
hour and bounded in size there):

- ``slaves.<state>``: how many slaves are in each state of master/status.py (idle, busy,
  disabled, lost, never seen);
- ``queue.pending`` and ``queue.oldest_wait_s``: the build requests waiting for a slave and
  how long the oldest has waited;
- ``slaveapi.<outcome>``: the SlaveAPI actions that finished since the previous sample, by
  outcome (success, failure, ...);
- ``tasks.pending`` and ``tasks.running``: the tasks (master/tasks) in those states;
  ``tasks.completed`` and ``tasks.failed``: the tasks that ended since the previous sample
  (``db.samples.tasks_by_state``);
- ``bots.<state>``: how many bots (the slaves that run tasks) are in each state of
  master/tasks/botstates.py (idle, busy, maintenance, quarantined, dead).

The overview page charts the slaves, the queue and the actions, /tasks the tasks and /bots the
bots (www/ui/views.py).  With several masters on one database each
records its own samples: the series then hold one value per master and minute (the charts
show the newest).
"""

from collections.abc import Callable

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from buildfarm.master.fleet import STATE_NAMES
from buildfarm.master.status import SLAVE_STATES, slave_statuses
from buildfarm.master.tasks.botstates import count_bots_by_state

log = Logger()

SAMPLE_INTERVAL_S = 60.0
SLAVES = "slaves."
QUEUE_PENDING = "queue.pending"
QUEUE_OLDEST_WAIT = "queue.oldest_wait_s"
SLAVEAPI = "slaveapi."
TASKS = "tasks."
TASKS_ENDED = ("completed", "failed")
BOTS = "bots."
COUNTED = frozenset({*(f"{SLAVEAPI}{name}" for name in STATE_NAMES.values()),
                     *(f"{TASKS}{end}" for end in TASKS_ENDED)})  # summed per hour


class Sampler(service.Service):
    """Records the samples while the master runs (the first at start-up)."""

    name = "sampler"

    def __init__(self, master, interval_s: float = SAMPLE_INTERVAL_S):
        self.master = master
        self.interval_s = interval_s
        self._loop: task.LoopingCall | None = None
        self._last_at: float | None = None
        self._running: defer.Deferred | None = None  # the sample under way
        self._observers: list[Callable[[float], None]] = []

    @property
    def last_at(self) -> float | None:
        """When this master last recorded a sample (None before its first)."""
        return self._last_at

    def subscribe(self, observer: Callable[[float], None]) -> None:
        """Call ``observer(at)`` after each sample this master records (for the master's life:
        the web's charts over time drop their cached reads)."""
        self._observers.append(observer)

    def startService(self):  # noqa: N802 - Twisted's name
        super().startService()
        self._loop = task.LoopingCall(self._sample_logged)
        self._loop.clock = self.master.reactor
        self._loop.start(self.interval_s, now=True)

    def stopService(self):  # noqa: N802 - Twisted's name
        """Stop sampling; the Deferred fires once a sample under way is recorded (the
        database stops after this service)."""
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        running, self._running = self._running, None
        if running is None:
            return defer.succeed(None)
        stopped: defer.Deferred = defer.Deferred()  # not ``running`` itself: the loop holds that one
        running.addBoth(lambda result: (stopped.callback(None), result)[1])
        return stopped

    def _sample_logged(self) -> None:
        """Start a sample; the loop keeps its pace without waiting for it (a sample still under
        way when the next is due makes that one skipped)."""
        if self._running is not None:
            log.warn("a sample of the fleet is still being recorded: this minute's is skipped")
            return
        d = defer.ensureDeferred(self.sample())
        d.addErrback(lambda f: log.failure("sampling the fleet and the queue failed", f))
        self._running = d
        d.addBoth(self._done, d)

    def _done(self, result, d: defer.Deferred):
        if self._running is d:
            self._running = None
        return result

    async def sample(self) -> dict[str, float]:
        """Record one sample now; the values recorded."""
        now = self.master.reactor.seconds()
        values: dict[str, float] = {f"{SLAVES}{state.replace(' ', '_')}": 0.0 for state in SLAVE_STATES}
        for status in (await slave_statuses(self.master)).values():
            key = f"{SLAVES}{status.state.replace(' ', '_')}"
            values[key] = values.get(key, 0.0) + 1
        queue = await self.master.db.buildrequests.get_queue_by_builder()
        values[QUEUE_PENDING] = float(sum(q["pending"] for q in queue.values()))
        oldest = min((q["oldest_submitted_at"] for q in queue.values()), default=None)
        values[QUEUE_OLDEST_WAIT] = max(0.0, now - oldest) if oldest is not None else 0.0
        after = self._last_at if self._last_at is not None else now - self.interval_s
        finished = await self.master.db.samples.actions_finished(after, now)
        for state, label in STATE_NAMES.items():
            values[f"{SLAVEAPI}{label}"] = float(finished.get(state, 0))
        tasks = await self.master.db.samples.tasks_by_state(after, now)
        values.update({f"{TASKS}{name}": float(count) for name, count in tasks.items()})
        bots = await count_bots_by_state(self.master)
        values.update({f"{BOTS}{state}": float(count) for state, count in bots.items()})
        self._last_at = now
        await self.master.db.samples.add(now, values, COUNTED)
        for observer in list(self._observers):
            observer(now)
        return values
