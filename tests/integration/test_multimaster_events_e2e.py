"""Events across masters, as real processes on one PostgreSQL database and one real RabbitMQ
broker: a page open on master A (its ``/views/events`` Server-Sent Events stream, read here by
a plain HTTP client) sees live a build that master B's slave runs, without a refetch, because
A consumes B's events from the broker; with the broker stopped mid-run and started again,
the builds B runs meanwhile still reach A's stream once the broker is back."""

import base64
import http.client
import json
import threading
import time

from fixtures.daemons import TEST_PASSWORD, TEST_USER, wait_for
from fixtures.rabbitmq import rabbitmq_server  # noqa: F401 - the session's broker

STREAM_TIMEOUT_S = 120.0  # one read of the stream; keepalives come every 15 s
DELIVERY_DEADLINE_S = 60.0  # the publisher's and consumer's backoff reach 30 s while the broker is down

CFG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': {db_url!r}}}
c['mq'] = {{'type': 'amqp', 'url': {mq_url!r}}}
c['multiMaster'] = True
c['builders'] = [util.BuilderConfig(name='runtests', slavenames=['bs1'], factory=util.BuildFactory([
    steps.ShellCommand(command=['echo', 'hello'])]))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['runtests'])]
"""


def events_master(fleet, db_url: str, broker):
    return fleet.master(config=lambda pb_port, www_port: CFG.format(
        pb_port=pb_port, www_port=www_port, db_url=db_url, mq_url=broker.url))


class EventStream:
    """A Server-Sent Events client of one master's ``/views/events``, reading in a thread:
    ``events`` holds each ``(event, data)`` as it arrives."""

    def __init__(self, master) -> None:
        self.events: list[tuple[str, dict]] = []
        self._conn = http.client.HTTPConnection("127.0.0.1", master.www_port, timeout=STREAM_TIMEOUT_S)
        token = base64.b64encode(f"{TEST_USER}:{TEST_PASSWORD}".encode()).decode()
        self._conn.request("GET", "/views/events", headers={"Accept": "text/event-stream",
                                                            "Authorization": f"Basic {token}"})
        self._response = self._conn.getresponse()
        assert self._response.status == 200, self._response.read()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        wait_for(lambda: self.named("hello"), "the stream's hello")

    def _read(self) -> None:
        event, data = None, []
        try:
            for raw in self._response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[len("event: "):]
                elif line.startswith("data: "):
                    data.append(line[len("data: "):])
                elif not line and event is not None:
                    self.events.append((event, json.loads("\n".join(data))))
                    event, data = None, []
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            return  # closed by the test (http.client then fails on its closed file)

    def named(self, name: str) -> list[dict]:
        return [data for event, data in list(self.events) if event == name]

    def builds(self, buildid: int) -> list[dict]:
        return [data for data in self.named("build") if data["buildid"] == buildid]

    def close(self) -> None:
        self._conn.sock and self._conn.sock.shutdown(2)
        self._conn.close()
        self._thread.join(10)


def test_a_build_run_by_another_masters_slave_appears_live_on_this_masters_page(
        fleet, db_url_postgresql, rabbitmq_server):  # noqa: F811 - the fixture imported above
    a = events_master(fleet, db_url_postgresql, rabbitmq_server)
    b = events_master(fleet, db_url_postgresql, rabbitmq_server)
    fleet.slave(b, "bs1")
    b.wait_attached("bs1")
    for master in (a, b):
        wait_for(lambda m=master: "consuming the other masters' events" in m.log_text(), "the consumers")
    stream = EventStream(a)
    try:
        brid = b.force("runtests")
        buildid = b.wait_request_complete(brid)["buildids"][0]
        shown = wait_for(lambda: [d for d in stream.builds(buildid) if d["state"] == "success"],
                         "a's stream to show b's finished build", DELIVERY_DEADLINE_S)
        assert shown[0]["slavename"] == "bs1" and shown[0]["buildername"] == "runtests"
        started_at = time.monotonic()

        rabbitmq_server.stop_server()
        try:
            during = []
            for _ in range(2):
                during.append(b.wait_request_complete(b.force("runtests"))["buildids"][0])
            assert not any(stream.builds(i) for i in during)  # nothing can reach a: no broker
        finally:
            rabbitmq_server.start()
        wait_for(lambda: all(any(d["state"] == "success" for d in stream.builds(i)) for i in during),
                 "a's stream to show the builds b ran while the broker was down", DELIVERY_DEADLINE_S)
        assert time.monotonic() - started_at < 5 * DELIVERY_DEADLINE_S
    finally:
        stream.close()
    assert "consuming events from the broker failed" in a.log_text()
    for shown_build in (buildid, *during):  # started and finished, each once (deduped by eventId)
        assert len(stream.builds(shown_build)) == 2, stream.builds(shown_build)
