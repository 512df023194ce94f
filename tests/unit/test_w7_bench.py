"""W7's pure parts (benchmarks/w7_tasks.py): the trigger body a client sends, the timestamps it
reads back, how one batch's throughput and latencies are worked out, and a figure for every row."""

import http.server
import inspect
import json
import threading

import pytest

from benchmarks import run, w7_tasks
from buildfarm.master.tasks.model import request_from_json


def test_w7_is_a_workload_of_make_bench():
    assert run.WORKLOADS["W7"] is w7_tasks


def test_the_trigger_body_is_a_valid_non_idempotent_task_of_the_pool_running_w1s_command():
    request = request_from_json(w7_tasks.task_body("w7-0", "w7run:abc"))
    [task_slice] = request.task_slices
    assert list(task_slice.properties.command) == ["true"]
    assert task_slice.properties.dimensions_dict() == {"pool": [w7_tasks.POOL]}
    assert not task_slice.properties.idempotent  # every task runs: none is answered from another
    assert list(request.tags) == ["w7run:abc"]


def test_each_trigger_has_its_own_request_uuid():
    first, second = (w7_tasks.task_body("t", "w7run:x") for _ in range(2))
    assert first["request_uuid"] != second["request_uuid"]


def test_v1_timestamps_are_read_as_naive_utc():
    assert w7_tasks.v1_seconds("2026-12-04T21:00:00.250000") == 1796418000.25


def test_a_batch_gives_its_rate_from_first_sent_to_last_completed_and_latencies_from_each_answer():
    answered = {"a": 100.0, "b": 100.5, "c": 101.0, "d": 101.0}
    completed = {"a": 100.1, "b": 100.7, "c": 101.3, "d": 102.0}
    figures = w7_tasks.figures(99.0, answered, completed, failed=1)
    assert figures["per_s"] == pytest.approx(4 / 3.0)
    assert figures["p50_ms"] == pytest.approx(250)  # latencies 100, 200, 300, 1000 ms
    assert figures["p99_ms"] == pytest.approx(979)
    assert figures["failed"] == 1


def test_a_batch_with_one_never_completed_fails_loudly():
    with pytest.raises(AssertionError, match="1 of 2 never completed"):
        w7_tasks.figures(0.0, {"a": 1.0, "b": 1.0}, {"a": 2.0}, failed=0)


def test_every_row_is_measured():
    source = inspect.getsource(w7_tasks.one_run)
    assert all(f'"{row.key}"' in source for row in w7_tasks.rows(quick=False))


class _ClosingAfterEachAnswer(http.server.BaseHTTPRequestHandler):
    """Answers ``{"n": ...}`` over HTTP/1.1 without saying it closes, then closes: what a
    keep-alive connection left idle past the master's idle timeout looks like to the client."""

    protocol_version = "HTTP/1.1"
    answered = 0

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).answered += 1
        body = json.dumps({"n": self.answered}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_the_client_opens_a_new_connection_when_the_master_closed_an_idle_one():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ClosingAfterEachAnswer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = w7_tasks.Client(server.server_address[1])
    try:
        assert client.call("GET", "/a") == {"n": 1}
        assert client.call("GET", "/b") == {"n": 2}  # on a new connection, once
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join()


def test_w7s_targets_are_judged_without_buildbot():
    figures = {row.key: 1.0 for row in w7_tasks.rows(quick=True)}
    figures.update(tasks_vs_builds=1.2, task_vs_build_p50=1.5, tasks_failed=0, builds_failed=2)
    lines = run.table_rows(w7_tasks, w7_tasks.rows(quick=True), figures, run.NOT_RUN)
    met = {line[1]: line[7] for line in lines}
    assert met["tasks/s / builds/s"] == "yes"
    assert met["task p50 / build p50"] == "NO"
    assert met["builds not successful, all runs"] == "NO"
    assert met["tasks/s, 40 one-command tasks on 4 slaves"] == ""  # no target
