"""Exactly once across masters, as real processes: two masters on one PostgreSQL database.

- idempotent task dedup: pairs of twins sent at the same instant, one of each pair to master A
  and the other to master B (Swarming's tasks/new over HTTP), run once per pair: the other is
  attached to it in flight, or answered from its result.
"""

import os
import threading

from test_tasks_e2e import TASK_DEADLINE_S, Swarming, body, task_output, token

PAIRS = 15
TASKS_CFG = """\
from buildfarm.master.plugins import slaves
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass', dimensions={{'pool': 'ci'}}),
               slaves.BuildSlave('bs2', 'pass', dimensions={{'pool': 'ci'}})]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}, 'anonymous_scopes': ['tasks:create:ci', 'tasks:read']}}
c['db'] = {{'db_url': {db_url!r}}}
c['tasks'] = {{'min_timeout_secs': 1}}
c['multiMaster'] = True
c['multiMasterSettings'] = {{'heartbeat_secs': 0.5, 'dead_after_secs': 2}}
c['builders'] = []
c['schedulers'] = []
"""


def two_masters(fleet, db_url: str, cfg: str = TASKS_CFG):
    config = lambda pb_port, www_port: cfg.format(pb_port=pb_port, www_port=www_port, db_url=db_url)  # noqa: E731
    return fleet.master(config=config), fleet.master(config=config)


def in_pairs(calls: list) -> list:
    """Each ``(call_a, call_b)`` run in two threads released together; the answers in order."""
    answers: list = [None] * (2 * len(calls))
    errors: list = []

    def run(i: int, call, barrier: threading.Barrier) -> None:
        try:
            barrier.wait(TASK_DEADLINE_S)
            answers[i] = call()
        except BaseException as e:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(e)

    threads = []
    for n, pair in enumerate(calls):
        barrier = threading.Barrier(2)
        threads += [threading.Thread(target=run, args=(2 * n + k, call, barrier))
                    for k, call in enumerate(pair)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2 * TASK_DEADLINE_S)
    assert not errors, errors
    return answers


def test_twins_sent_to_two_masters_at_once_run_once(fleet, db_url_postgresql):
    a, b = two_masters(fleet, db_url_postgresql)
    fleet.slave(a, "bs1")
    fleet.slave(b, "bs2")
    a.wait_attached("bs1")
    b.wait_attached("bs2")
    on_a, on_b = Swarming(a.url), Swarming(b.url)
    runs = [os.path.join(fleet.root, f"runs-{n}") for n in range(PAIRS)]
    tasks = [body(["sh", "-c", f"echo run >> {runs[n]}; echo pair {n} {token()}"], idempotent=True)
             for n in range(PAIRS)]

    answers = in_pairs([(lambda t=t: on_a.new(t), lambda t=t: on_b.new(t)) for t in tasks])

    ids = [answer["task_id"] for answer in answers]
    results = [on_a.wait(task_id) for task_id in ids]
    for n in range(PAIRS):
        pair = results[2 * n:2 * n + 2]
        ran = [r for r in pair if "deduped_from" not in r]
        assert len(ran) == 1, (n, pair)
        assert [r["deduped_from"] for r in pair if r is not ran[0]] == [ran[0]["task_id"]]
        assert {(r["state"], r["exit_code"]) for r in pair} == {("COMPLETED", "0")}
        with open(runs[n]) as f:
            assert f.read() == "run\n", n
        assert {on_b.stdout(r["task_id"]) for r in pair} == {task_output(tasks[n])}
    print(f"{PAIRS} pairs of twins sent to two masters at once: {PAIRS} runs")
