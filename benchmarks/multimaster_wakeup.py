"""Wake-ups between masters (issue 21): two buildfarm masters on one PostgreSQL database with
``c['multiMaster']``; slave ``s1`` attached to master A, ``s2`` to master B.  Requests are
forced on A, one at a time on idle slaves: builder ``there`` (only ``s2`` can run it, so only B
can start it: B must learn of the request from A) and, interleaved, builder ``here`` (``s1``, on
A itself: the single-master baseline).  Measured: the request's ``submitted_at`` (A's clock) to
its build's ``started_at`` (the starting master's clock; one machine, one wall clock), p50 and
p95.  Without wake-ups B would see the request at its next 2 s poll (about 1 s at p50).

``--wakeups postgresql`` (the default): B is woken by PostgreSQL's ``LISTEN/NOTIFY``;
``--wakeups broker``: the masters also run with ``c['mq']`` amqp on a real RabbitMQ broker
(tests/fixtures/rabbitmq.py) and ``c['multiMasterSettings']['wakeups'] = 'broker'``: B is woken
by A's ``request-submitted`` event (A's outbox, its publisher, the broker, B's consumer).

    .venv/bin/python -m benchmarks.multimaster_wakeup [--requests 30] [--wakeups broker]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_DIR, "tests"))

from benchmarks.stats import percentile  # noqa: E402
from fixtures.daemons import Fleet, wait_for  # noqa: E402
from fixtures.postgres import PostgresServer  # noqa: E402
from fixtures.rabbitmq import RabbitMQServer  # noqa: E402

REQUESTS = 30
WARMUP = 3
IDLE_GAP_S = 0.2  # the masters and slaves are idle when each request arrives
POLL_S = 0.01
CFG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('s1', 'pass'), slaves.BuildSlave('s2', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': {db_url!r}}}
c['multiMaster'] = True
c['builders'] = [util.BuilderConfig(name=name, slavenames=[slave],
                                    factory=util.BuildFactory([steps.ShellCommand(command=['true'])]))
                  for name, slave in (('here', 's1'), ('there', 's2'))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['here', 'there'])]
"""
BROKER_CFG = """
c['mq'] = {{{{'type': 'amqp', 'url': {mq_url!r}}}}}
c['multiMasterSettings'] = {{{{'wakeups': 'broker'}}}}
"""
WAKEUPS = ("postgresql", "broker")


def start_ms(master, builder: str) -> float:
    """Force ``builder`` on ``master``; ms from the request's submission to its build's start."""
    brid = master.force(builder)
    request = wait_for(lambda: (r := master.get(f"/api/v1/buildrequests/{brid}"))["complete"] and r,
                       f"request {brid}", 60)
    assert request["result"] == "success", request
    build = master.get(f"/api/v1/builds/{request['buildids'][0]}")
    return (build["started_at"] - request["submitted_at"]) * 1000


def measure(requests: int, wakeups: str = "postgresql") -> dict:
    server = PostgresServer.start_new()
    broker = RabbitMQServer.start_new() if wakeups == "broker" else None
    root = tempfile.mkdtemp(prefix="bench-wakeup-")
    fleet = Fleet(root)
    try:
        db_url = server.url(server.create_database())
        extra = BROKER_CFG.format(mq_url=broker.url) if broker is not None else ""
        text = CFG + extra
        masters = [fleet.master(config=lambda pb, www: text.format(pb_port=pb, www_port=www, db_url=db_url))
                   for _ in range(2)]
        a, b = masters
        fleet.slave(a, "s1")
        fleet.slave(b, "s2")
        a.wait_attached("s1", 60)
        b.wait_attached("s2", 60)
        times: dict[str, list[float]] = {"here": [], "there": []}
        for n in range(WARMUP + requests):
            for builder in ("there", "here"):
                time.sleep(IDLE_GAP_S)
                took = start_ms(a, builder)
                if n >= WARMUP:
                    times[builder].append(took)
        return {f"{builder}_{p}_ms": round(percentile(values, q), 1)
                for builder, values in times.items() for p, q in (("p50", 50), ("p95", 95))} | {
            "requests": requests, "wakeups": wakeups}
    finally:
        fleet.stop_all()
        if broker is not None:
            broker.stop()
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--wakeups", choices=WAKEUPS, default=WAKEUPS[0],
                        help="how B hears of A's requests (default: %(default)s)")
    options = parser.parse_args(argv)
    print(json.dumps(measure(options.requests, options.wakeups), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
