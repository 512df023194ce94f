"""The master's Prometheus metrics, served at ``GET /metrics`` (docs/api.md lists them).

Counters are fed by the master's events through the small functions at the end of this
module (``build_started``, ``build_finished``, ``log_bytes_hook``), each given the master
(every master has its ``metrics``).  Gauges are read at scrape time from the
BotMaster and the database, so they are right after a restart and with several masters.
Everything lives in the master's own ``CollectorRegistry``, never the process-global one.
"""

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from buildfarm.common.results import result_name
from buildfarm.master.fleet import STATE_NAMES
from buildfarm.master.status import attached_count

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class MasterMetrics:
    """The counters of one master and the registry ``/metrics`` renders."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.builds_started = Counter(
            "buildfarm_builds_started", "Builds this master started, by builder.",
            ["builder"], registry=self.registry)
        self.builds_finished = Counter(
            "buildfarm_builds_finished", "Builds this master finished, by builder and result.",
            ["builder", "result"], registry=self.registry)
        self.log_bytes = Counter(
            "buildfarm_log_bytes_written", "Bytes (UTF-8) of step log text written to the database.",
            registry=self.registry)
        self.cas = CASMetrics(self.registry)
        self._scraped = _ScrapedGauges()
        self.registry.register(self._scraped)

    async def render(self, master) -> bytes:
        """The Prometheus text exposition of every metric, gauges read from ``master`` now."""
        self._scraped.snapshot = await _read_gauges(master)
        return generate_latest(self.registry)


class _ScrapedGauges(Collector):
    """The gauges read at scrape time (``render`` stores them in ``snapshot`` first)."""

    def __init__(self) -> None:
        self.snapshot: dict = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.snapshot
        if not snap:
            return
        pending = GaugeMetricFamily("buildfarm_buildrequests_pending",
                                    "Build requests waiting for a slave (unclaimed), by builder.",
                                    labels=["builder"])
        oldest = GaugeMetricFamily("buildfarm_buildrequests_oldest_age_seconds",
                                   "Age of the oldest waiting build request, by builder (0: none).",
                                   labels=["builder"])
        for builder, (count, age) in sorted(snap["queue"].items()):
            pending.add_metric([builder], count)
            oldest.add_metric([builder], age)
        yield pending
        yield oldest
        yield GaugeMetricFamily("buildfarm_slaves_attached", "Slaves attached to this master.",
                                value=snap["attached"])
        yield GaugeMetricFamily("buildfarm_builds_running", "Builds this master is running.",
                                value=snap["running"])
        actions = GaugeMetricFamily("buildfarm_slaveapi_actions",
                                    "SlaveAPI action requests recorded, by action and state.",
                                    labels=["action", "state"])
        for action, state, count in sorted(snap["actions"]):
            actions.add_metric([action, STATE_NAMES.get(state, str(state))], count)
        yield actions


async def _read_gauges(master) -> dict:
    now = master.reactor.seconds()
    queue = {name: (0, 0.0) for name in master.botmaster.builders}
    for name, row in (await master.db.buildrequests.get_queue_by_builder()).items():
        queue[name] = (row["pending"], max(0.0, now - row["oldest_submitted_at"]))
    return {
        "queue": queue,
        "attached": attached_count(master.botmaster),
        "running": len(master.botmaster.running_builds),
        "actions": await master.db.slaveapi.count_results(),
    }


# -- hooks the master's code calls (one line each) -------------------------------------------
# ``master`` is the master as the build logic sees it (``IProcessMaster``): it always has its
# ``metrics``; a test that counts nothing still gives it a ``MasterMetrics``.

def build_started(master, builder: str) -> None:
    """A build of ``builder`` started (build.py)."""
    master.metrics.builds_started.labels(builder).inc()


def build_finished(master, builder: str, results: int) -> None:
    """A build of ``builder`` finished with ``results`` (build.py)."""
    master.metrics.builds_finished.labels(builder, result_name(results)).inc()


def log_bytes_hook(master) -> Callable[[str], None]:
    """What a ``LogWriter`` calls with each chunk of text it writes to the database."""
    counter = master.metrics.log_bytes
    return lambda text: counter.inc(len(text.encode("utf-8", "replace")))


class CASMetrics:
    """The content-addressed store's metrics (docs/cas.md): what is stored per namespace (set
    by each janitor pass, which walks the store anyway, and kept up between passes by the
    puts and deletions), preupload's hits and misses, and the bytes taken in and sent out."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.items = Gauge("buildfarm_cas_items", "Items in the content-addressed store, by namespace.",
                           ["namespace"], registry=registry)
        self.bytes = Gauge("buildfarm_cas_bytes", "Bytes (as stored) in the content-addressed store, "
                           "by namespace.", ["namespace"], registry=registry)
        self.hits = Counter("buildfarm_cas_hits", "Items preupload found stored (no upload needed), "
                            "by namespace.", ["namespace"], registry=registry)
        self.misses = Counter("buildfarm_cas_misses", "Items preupload did not find (an upload is asked "
                              "for), by namespace.", ["namespace"], registry=registry)
        self.bytes_in = Counter("buildfarm_cas_bytes_in", "Bytes (as stored) of the items uploaded and "
                                "verified, by namespace.", ["namespace"], registry=registry)
        self.bytes_out = Counter("buildfarm_cas_bytes_out", "Bytes (as stored) sent by retrieve and the "
                                 "content URLs, by namespace.", ["namespace"], registry=registry)
        self.expired = Counter("buildfarm_cas_expired_items", "Items the janitor deleted, by namespace.",
                               ["namespace"], registry=registry)
        self.janitor_passes = Counter("buildfarm_cas_janitor_passes", "Janitor passes over the store, "
                                      "by outcome.", ["outcome"], registry=registry)

    def looked_up(self, namespace: str, hits: int, misses: int) -> None:
        self.hits.labels(namespace).inc(hits)
        self.misses.labels(namespace).inc(misses)

    def stored(self, namespace: str, new: bool, size: int) -> None:
        self.bytes_in.labels(namespace).inc(size)
        if new:
            self.items.labels(namespace).inc()
            self.bytes.labels(namespace).inc(size)

    def sent(self, namespace: str, size: int) -> None:
        self.bytes_out.labels(namespace).inc(size)

    def counted(self, stored: dict, deleted: dict) -> None:
        """A janitor pass's totals: ``{namespace: [items, bytes]}`` stored and deleted."""
        for namespace, (items, _size) in deleted.items():
            self.expired.labels(namespace).inc(items)
        for namespace in {labels[0] for labels in _label_sets(self.items)} - set(stored):
            self.items.labels(namespace).set(0)
            self.bytes.labels(namespace).set(0)
        for namespace, (items, size) in stored.items():
            self.items.labels(namespace).set(items)
            self.bytes.labels(namespace).set(size)


def _label_sets(metric) -> list[tuple[str, ...]]:
    return [tuple(sample.labels.values()) for family in metric.collect() for sample in family.samples]
