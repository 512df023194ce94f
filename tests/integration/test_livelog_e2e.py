"""The build page's live log, end to end: a real master and slave daemon on loopback, a build
printing lines, and real Server-Sent-Events clients over HTTP reading it while it runs: one
from the start, one that joins in the middle, one that resumes where an earlier page was.
Each gets every line of the log exactly once, in order, and the stream ends with the build."""

import http.client
import json
import os
import threading

from fixtures.daemons import wait_for

FIRST_HALF, SECOND_HALF = 3000, 3000
RESUME_AT = 1000
CLIENT_DEADLINE_S = 60.0


def printing_command(go_file: str) -> list[str]:
    """Prints ``FIRST_HALF`` lines, waits for ``go_file``, prints the rest and an unfinished line."""
    return ["sh", "-c",
            f"i=0; while [ $i -lt {FIRST_HALF} ]; do echo line $i; i=$((i+1)); done; "
            f"while [ ! -e {go_file} ]; do sleep 0.05; done; "
            f"while [ $i -lt {FIRST_HALF + SECOND_HALF} ]; do echo line $i; i=$((i+1)); done; "
            "printf 'no newline at the end'"]


class EventClient:
    """An SSE client on a thread: GET ``path`` and collect the events until the stream ends."""

    def __init__(self, port: int, path: str):
        self.events: list[tuple[str, dict]] = []
        self.error: BaseException | None = None
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_DEADLINE_S)
        self._path = path
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            self._connection.request("GET", self._path, headers={"Accept": "text/event-stream"})
            response = self._connection.getresponse()
            assert response.status == 200, response.status
            fields: dict[str, str] = {}
            for raw in response:
                line = raw.decode().rstrip("\n")
                if line:
                    name, _, value = line.partition(": ")
                    fields[name] = value
                elif "event" in fields:
                    self.events.append((fields["event"], json.loads(fields["data"])))
                    fields = {}
                else:
                    fields = {}
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self._connection.close()

    def text(self) -> str:
        return "".join(data["text"] for kind, data in list(self.events) if kind == "lines")

    def finished(self) -> bool:
        return not self._thread.is_alive()


def test_live_viewers_get_every_line_of_a_running_build_once_in_order(fleet, tmp_path):
    go_file = os.path.join(tmp_path, "go")
    master = fleet.master(command=printing_command(go_file))
    fleet.slave(master)
    master.wait_attached("bs1")
    brid = master.force()
    buildid = wait_for(lambda: master.get(f"/api/v1/buildrequests/{brid}")["buildids"], "the build")[0]
    events_path = f"/builds/{buildid}/events"

    first = EventClient(master.www_port, events_path)
    wait_for(lambda: first.text().count("\n") >= FIRST_HALF, "the first half on the first client")
    logid = next(data["logid"] for kind, data in first.events if kind == "newlog")
    joining = EventClient(master.www_port, events_path)
    resuming = EventClient(master.www_port, f"{events_path}?logs={logid}:{RESUME_AT}")
    for client in (joining, resuming):
        wait_for(lambda c=client: f"line {FIRST_HALF - 1}\n" in c.text(), "a late client to catch up")
    open(go_file, "w").close()  # the second half is written while all three watch

    for client in (first, joining, resuming):
        wait_for(client.finished, "the stream to end", CLIENT_DEADLINE_S)
        assert client.error is None, client.error
        assert client.events[-1][0] == "done" and client.events[-1][1]["result_label"] == "success"
    status, stored = master.request("GET", f"/api/v1/builds/{buildid}/steps/0/logs/stdio")
    assert status == 200
    whole = stored.decode()
    assert f"line {FIRST_HALF + SECOND_HALF - 1}\nno newline at the end" in whole
    assert first.text() == whole and joining.text() == whole
    assert resuming.text() == "\n".join(whole.split("\n")[RESUME_AT:])
