"""The web port and the SlaveAPI port refuse oversized bodies before reading them, end to end:
a real master in the test process listening on 127.0.0.1, a raw client on a real socket.

Before http/site.py, Twisted read every body to a temporary file (past 100 KB) and only then
ran the handler, which answered 413 or 401: a 1 GiB POST put 1 GiB on disk."""

import json
import tempfile

import pytest
import pytest_twisted

from buildfarm.master.http import site as http_site
from buildfarm.master.http.limits import SLAVEAPI_MAX_BODY_BYTES as SLAVEAPI_MAX
from buildfarm.master.www.api import MAX_BODY_BYTES as API_MAX
from buildfarm.master.www.ui.app import MAX_FORM_BYTES, MAX_LOGIN_BYTES
from fixtures.daemons import free_port
from fixtures.inprocessmaster import CHANGE_SECRET, TOKEN, make_basedir, start_master
from fixtures.rawhttp import connect, until_closed

GIB = 1024**3
CHUNK = b"x" * 8192


class RecordingRequest(http_site.BoundedRequest):
    """Remembers every request the site made, to look at their bodies afterwards."""

    made: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RecordingRequest.made.append(self)


@pytest.fixture
def spooled(monkeypatch):
    """Every temporary file made while the test runs (Twisted spools bodies to them)."""
    made = []
    real = tempfile.TemporaryFile

    def recording(*args, **kwargs):
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", recording)
    monkeypatch.setattr(http_site.BoundedSite, "requestFactory", RecordingRequest)
    RecordingRequest.made = []
    return made


@pytest_twisted.async_yield_fixture
async def master(tmp_path):
    """A started master serving its web port and its SlaveAPI port on 127.0.0.1."""
    basedir = make_basedir(str(tmp_path), {"port": loopback_port()})
    with open(f"{basedir}/master.cfg", "a") as f:
        f.write(f"c['slaveapi'] = {{'port': {loopback_port()!r}}}\n")
    started = await start_master(basedir)
    yield started
    await started.stopService()


def loopback_port() -> str:
    return f"tcp:{free_port()}:interface=127.0.0.1"


def web_port(master) -> int:
    return master.www.port.getHost().port


def slaveapi_port(master) -> int:
    return master.slaveapi.port.getHost().port


def head(method: str, path: str, *lines: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *lines, "", ""]).encode()


def chunked(total: int) -> bytes:
    """``total`` bytes of a chunked body, without the last chunk (the body never ends)."""
    return b"".join(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) for _ in range(total // len(CHUNK)))


@pytest_twisted.ensureDeferred
async def test_a_1_gib_content_length_is_refused_at_once_without_sending_the_body(master, spooled):
    client = await connect(web_port(master))
    client.send(head("POST", "/api/v1/builders/linux/force", f"Content-Length: {GIB}",
                     "Content-Type: application/json", f"Authorization: Bearer {TOKEN}"))

    await until_closed(client)  # not one byte of the body was sent

    assert client.status == 413
    assert str(API_MAX) in json.loads(client.body)["error"]
    assert spooled == [] and [r.content for r in RecordingRequest.made] == [None]  # no body read
    assert await master.db.buildrequests.count() == 0  # the handler never ran


@pytest_twisted.ensureDeferred
async def test_a_chunked_body_past_the_cap_is_cut_off_before_spooling_and_before_the_handler(master, spooled):
    client = await connect(slaveapi_port(master))
    client.send(head("POST", "/slaves/bs1/actions/disable", "Transfer-Encoding: chunked",
                     "Content-Type: application/json", f"Authorization: Bearer {TOKEN}"))
    client.send(chunked(4 * SLAVEAPI_MAX))

    await until_closed(client)

    assert client.status == 413
    assert json.loads(client.body)["error"] == "request entity too large"
    assert spooled == []
    assert all(len(r.content.getvalue()) <= SLAVEAPI_MAX for r in RecordingRequest.made)
    assert await master.db.slaveapi.get_audit("bs1", limit=10) == []  # the handler never ran
    assert (await master.db.slaveapi.get_settings("bs1"))["enabled"]


@pytest_twisted.ensureDeferred
async def test_a_body_under_the_cap_reaches_the_handler_from_memory(master, spooled):
    body = json.dumps({"comments": "x" * 500_000, "author": "me"}).encode()  # Twisted spooled past 100 KB
    client = await connect(web_port(master))
    client.send(head("POST", "/api/v1/changes", f"Content-Length: {len(body)}", "Connection: close",
                     "Content-Type: application/json", f"X-Buildfarm-Secret: {CHANGE_SECRET}") + body)

    await until_closed(client)

    assert client.status == 200, client.data[:300]
    assert spooled == []
    change = await master.db.changes.get(json.loads(client.body)["changeid"])
    assert len(change["comments"]) == 500_000


@pytest.mark.parametrize(("path", "cap", "content_type"), [
    ("/login", MAX_LOGIN_BYTES, "text/html"),
    ("/builders/linux/force", MAX_FORM_BYTES, "text/html"),
    ("/slaveapi/slaves/bs1/actions/reboot", SLAVEAPI_MAX, "application/json"),
    ("/api/v1/changes", API_MAX, "application/json"),
    ("/%6Cogin", MAX_LOGIN_BYTES, "text/html"),  # percent-encoded: still the login cap
    ("/metrics", 0, "application/json"),
])
@pytest_twisted.ensureDeferred
async def test_each_part_of_the_web_port_has_its_cap(master, spooled, path, cap, content_type):
    client = await connect(web_port(master))
    client.send(head("POST", path, f"Content-Length: {cap + 1}", "Expect: 100-continue"))

    await until_closed(client)

    assert client.status == 413  # no "100 Continue" first: the client need not send the body
    assert client.data.lower().split(b"\r\n\r\n")[0].count(b"content-type: " + content_type.encode()) == 1


def test_the_longest_prefix_names_the_rule_of_a_path():
    rules = [http_site.BodyRule("/api/", 100), http_site.BodyRule("/api/v1/upload", 1000)]
    site = http_site.BoundedSite(None, rules, http_site.BodyRule("/", 10))
    assert site.body_rule(b"/api/v1/upload/x?y=1").max_bytes == 1000
    assert site.body_rule(b"/api/v1/builds").max_bytes == 100
    assert site.body_rule(b"/%61pi/v1/builds").max_bytes == 100
    assert site.body_rule(b"http://host:8010/api/v1/builds").max_bytes == 100
    assert site.body_rule(b"/builders").max_bytes == 10
    assert site.body_rule(b"*").max_bytes == 10
