"""Fault injection, small size (issue 21; ``make chaos`` runs the full size): 3 real masters on
one real PostgreSQL and one real RabbitMQ, 12 real slaves each created with all three masters,
30 build requests and 30 Taskcluster Queue tasks submitted across the masters over HTTP while
one master is SIGKILLed (and restarted 5 s later), PostgreSQL is restarted and RabbitMQ is
restarted.  Then every request and task finished with success, each build attempt is
recorded, no request ran to success twice, a consumer of the exchanges saw every final state,
and nothing is left held by a dead master (tests/fixtures/chaos.py says how each is read).

It restarts the session's PostgreSQL and RabbitMQ, so it uses servers of its own."""

import random

import pytest

from fixtures.chaos import LOCK_PATH, ChaosRun, Settings, print_counts
from fixtures.fixedports import hold_fixed_ports
from fixtures.postgres import PostgresServer
from fixtures.rabbitmq import RabbitMQServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SMALL = {"requests": 30, "tasks": 30, "kill_every_s": (6.0, 8.0), "max_kills": 1, "submit_over_s": 16.0}


@pytest.fixture
def servers():
    """A PostgreSQL and a RabbitMQ of this test's own (it restarts them)."""
    postgres = PostgresServer.start_new()
    try:
        rabbitmq = RabbitMQServer.start_new()
        try:
            yield postgres, rabbitmq
        finally:
            rabbitmq.stop()
    finally:
        postgres.stop()


def test_requests_and_tasks_all_succeed_once_through_a_master_kill_and_database_and_broker_restarts(
        tmp_path, servers):
    postgres, rabbitmq = servers
    seed = random.SystemRandom().randrange(2**32)
    lines = []

    def say(line: str) -> None:  # shown by pytest if the run fails before its counts
        lines.append(line)
        print(line)

    with hold_fixed_ports(LOCK_PATH):
        run = ChaosRun(str(tmp_path), postgres, rabbitmq, Settings(seed=seed, **SMALL), say=say)
        try:
            counts = run.run()
        finally:
            run.stop()
    print_counts(counts, say=say)
    report = "\n".join(lines)
    assert counts["problems"] == [], report
    assert counts["requests"] >= SMALL["requests"], report
    assert counts["requests succeeded"] == counts["requests"], report
    assert counts["tasks"] == SMALL["tasks"] == counts["tasks completed"], report
    assert (counts["master kills"], counts["master restarts"]) == (1, 1), report
    assert (counts["PostgreSQL restarts"], counts["RabbitMQ restarts"]) == (1, 1), report
