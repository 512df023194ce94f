"""Isolate's own Python client (luci-py's ``isolateserver.py``, late 2021) against a real master,
replayed from the recorded contract (/work/shared/SWARMING-ISOLATE-API.md, "Isolate", "Common to
every request", "How the clients authenticate"): ``RecordedIsolateClient`` below sends exactly
what that client was observed to send, request by request, and checks what it was observed to
read, with ``--auth-disabled`` (no ``Authorization`` header; the master grants the namespaces'
``cas:read``/``cas:write`` to anonymous callers through ``c['www']['anonymous_scopes']``).

It is not the client itself (not installable here): it is the contract, which docs/cas.md cites.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import zlib
from urllib.parse import urlsplit

import pytest

from fixtures.daemons import Fleet, wait_for
from tests.fixtures import docexamples

V1 = "/_ah/api/isolateservice/v1"
USER_AGENT = "isolateserver.py/0.9.0"
# what python-requests adds to every request of the client
REQUESTS_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate", "Accept": "*/*",
                    "Connection": "keep-alive"}
JSON_TYPE = "application/json; charset=UTF-8"
PUT_HEADERS = {"Content-Type": "application/octet-stream", "Cache-Control": "public, max-age=31536000"}
BATCHES = (20, 20, 50, 50, 50)  # then 100 at a time
COMPRESSION_LEVEL = 7
INCOMPRESSIBLE = (".zip", ".png", ".jpg", ".gz")  # a few of the client's list: level 0
REDIRECTS = 5
# namespace -> (hashlib name, digest_hash): every kind the contract names
OPEN_NAMESPACES = {"default-gzip": ("sha1", "sha-1"), "sha256-deflate": ("sha256", "sha-256"),
                   "sha512-gzip": ("sha512", "sha-512"), "sha256-raw": ("sha256", "sha-256"),
                   "plain": ("sha1", "sha-1")}
CLOSED_NAMESPACE = "private-gzip"  # not among the anonymous scopes
CONFIG = """\
c = BuildmasterConfig = {{}}
c['slaves'] = []
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['cas'] = {{'upload_secret': 'contract-secret', 'retrieve_inline_max_bytes': 4096}}
{example}
c['www']['anonymous_scopes'] += {scopes!r}
"""


def batches(items: list) -> list[list]:
    """The client's preupload batches: 20, 20, 50, 50, 50, then 100 at a time."""
    out, i, sizes = [], 0, list(BATCHES)
    while i < len(items):
        size = sizes.pop(0) if sizes else 100
        out.append(items[i:i + size])
        i += size
    return out


class Answer:
    def __init__(self, status: int, headers, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> dict:
        """The answer as the client reads it: a non-empty JSON object, whatever the status."""
        assert self.body.strip(), f"an empty body (HTTP {self.status}) counts as a failure"
        assert self.headers.get("Content-Type", "").startswith("application/json"), self.headers
        value = json.loads(self.body)
        assert isinstance(value, dict), value
        return value


class RecordedIsolateClient:
    """What ``isolateserver.py --auth-disabled -I URL --namespace NS`` sends and reads."""

    def __init__(self, server: str, namespace: str, algo: str, digest_hash: str):
        self.server = server
        self.namespace = namespace
        self.algo = algo
        self.digest_hash = digest_hash
        self.compressed = namespace.endswith(("-gzip", "-deflate"))
        self.preupload_sizes: list[int] = []

    @property
    def namespace_object(self) -> dict:
        return {"namespace": self.namespace, "digest_hash": self.digest_hash,
                "compression": "flate" if self.compressed else ""}

    def digest(self, content: bytes) -> str:
        return hashlib.new(self.algo, content).hexdigest()

    def stored(self, content: bytes, name: str = "") -> bytes:
        """The bytes on the wire: a zlib stream (not gzip) at level 7, 0 for compressed formats."""
        if not self.compressed:
            return content
        level = 0 if name.endswith(INCOMPRESSIBLE) else COMPRESSION_LEVEL
        compressor = zlib.compressobj(level)
        return compressor.compress(content) + compressor.flush()

    # -- HTTP, as python-requests does it ------------------------------------------------

    def http(self, method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> Answer:
        for _ in range(REDIRECTS + 1):
            parts = urlsplit(url)
            assert parts.scheme == "http" and parts.hostname == "127.0.0.1", url  # loopback http is allowed
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            try:
                target = parts.path + (f"?{parts.query}" if parts.query else "")
                connection.request(method, target, body=body, headers={**REQUESTS_HEADERS, **(headers or {})})
                response = connection.getresponse()
                answer = Answer(response.status, response.headers, response.read())
            finally:
                connection.close()
            if method == "GET" and answer.status in (301, 302, 303, 307, 308):
                url = answer.headers["Location"]
                continue
            return answer
        raise AssertionError(f"too many redirects from {url}")

    def call(self, name: str, body: dict) -> tuple[int, dict]:
        """A v1 method: POST of compact sorted JSON."""
        data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        answer = self.http("POST", f"{self.server}{V1}/{name}", data, {"Content-Type": JSON_TYPE})
        return answer.status, answer.json()

    def preupload(self, items: list[tuple[str, int, bool]]) -> tuple[int, dict]:
        """``preupload`` of ``(digest, size, is_isolated)`` items: sizes as int64 strings."""
        wanted = [{"digest": d, "is_isolated": i, "size": str(s)} for d, s, i in items]
        return self.call("preupload", {"items": wanted, "namespace": self.namespace_object})

    def retrieve(self, digest: str, offset: int = 0) -> tuple[int, dict]:
        return self.call("retrieve", {"digest": digest, "namespace": self.namespace_object, "offset": offset})

    def ok(self, name: str, body: dict) -> dict:
        status, value = self.call(name, body)
        assert status == 200, (name, status, value)
        return value

    # -- archive ---------------------------------------------------------------------------

    def isolated_of(self, files: dict[str, tuple[bytes, int]]) -> bytes:
        """The 2.0 ``.isolated`` the client makes of a directory."""
        doc = {"algo": self.digest_hash, "version": "2.0",
               "files": {rel: {"h": self.digest(content), "m": mode, "s": len(content)}
                         for rel, (content, mode) in files.items()}}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def archive(self, files: dict[str, tuple[bytes, int]]) -> tuple[str, dict]:
        """Upload a directory's files and its ``.isolated``: its digest and what was pushed how
        (``{"inline": n, "url": n}``)."""
        isolated = self.isolated_of(files)
        items = [(self.digest(c), len(c), False, rel, c) for rel, (c, _) in sorted(files.items())]
        items.append((self.digest(isolated), len(isolated), True, "", isolated))
        pushed = {"inline": 0, "url": 0}
        for batch in batches(items):
            self.preupload_sizes.append(len(batch))
            status, answer = self.preupload([(d, s, i) for d, s, i, _, _ in batch])
            assert status == 200, answer
            for entry in answer.get("items", []):
                digest, _, _, name, content = batch[int(entry["index"])]
                ticket = entry["upload_ticket"]
                data = self.stored(content, name)
                if entry.get("gs_upload_url"):
                    self.put(entry["gs_upload_url"], data)
                    assert self.ok("finalize_gs_upload", {"upload_ticket": ticket}).get("ok") is True
                    pushed["url"] += 1
                else:
                    body = {"content": base64.b64encode(data).decode(), "upload_ticket": ticket}
                    assert self.ok("store_inline", body).get("ok") is True
                    pushed["inline"] += 1
        return self.digest(isolated), pushed

    def put(self, url: str, data: bytes) -> None:
        answer = self.http("PUT", url, data, PUT_HEADERS)
        assert answer.status == 200, (answer.status, answer.body)
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        assert f"md5={md5}" in answer.headers.get("x-goog-hash", ""), answer.headers  # the client asserts it

    # -- download ----------------------------------------------------------------------------

    def fetch(self, digest: str, offset: int = 0) -> bytes:
        """The stored bytes of ``digest`` from ``offset``, as ``retrieve`` and its URL give them."""
        status, answer = self.retrieve(digest, offset)
        assert status == 200, answer
        if "content" in answer:
            return base64.b64decode(answer["content"])
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        got = self.http("GET", answer["url"], headers=headers)
        assert got.status in (200, 206), (got.status, got.body[:200])
        if offset:
            match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", got.headers.get("Content-Range", ""))
            assert match and int(match.group(1)) == offset, got.headers  # the client checks the start
        return got.body

    def content(self, digest: str, size: int) -> bytes:
        """Fetch, inflate and verify one item, as the client does."""
        raw = self.fetch(digest)
        content = zlib.decompress(raw) if self.compressed else raw
        assert len(content) == size and self.digest(content) == digest
        return content


def tree(seed: int = 0) -> dict[str, tuple[bytes, int]]:
    """Files of a directory: 300 small (inline), a few over 500 bytes (an upload URL) and
    over 4 KiB (retrieved by URL), an executable, and already-compressed ones (level 0)."""
    files = {f"src/d{i % 9}/f{i}.txt": (f"file {i} {seed}\n".encode() * (i % 30 + 1), 0o644)
             for i in range(300)}
    files["bin/run.sh"] = (b"#!/bin/sh\necho contract\n", 0o755)
    files["data/big.bin"] = (os.urandom(200_000), 0o644)
    files["data/medium.txt"] = (b"medium line\n" * 500, 0o644)
    files["assets/bundle.zip"] = (os.urandom(9000), 0o644)
    files["assets/logo.png"] = (b"\x89PNG" + bytes(range(256)) * 8, 0o644)
    return files


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    fleet = Fleet(str(tmp_path_factory.mktemp("contract")))
    # docs/cas.md's example (default-gzip), then the other namespaces the same way
    example = docexamples.example("cas.md", "contract-anonymous")
    scopes = [f"cas:{kind}:{ns}" for ns in OPEN_NAMESPACES if ns != "default-gzip"
              for kind in ("read", "write")]
    started = fleet.master(config=lambda pb_port, www_port: CONFIG.format(
        pb_port=pb_port, www_port=www_port, example=example, scopes=scopes))
    wait_for(lambda: started.request("POST", f"{V1}/server_details", {}, user=None)[0] == 200,
             "the master's web port")
    yield started
    fleet.stop_all()


def client(master, namespace: str) -> RecordedIsolateClient:
    algo, digest_hash = OPEN_NAMESPACES.get(namespace, ("sha1", "sha-1"))
    return RecordedIsolateClient(master.url, namespace, algo, digest_hash)


@pytest.mark.parametrize("namespace", list(OPEN_NAMESPACES))
def test_the_recorded_archive_then_download_of_a_directory(master, namespace):
    isolate = client(master, namespace)
    files = tree(seed=len(namespace))
    digest, pushed = isolate.archive(files)
    # 306 items (305 files and the .isolated), checked in the client's batches
    assert isolate.preupload_sizes == [20, 20, 50, 50, 50, 100, 16]
    assert pushed["inline"] > 300 and pushed["url"] >= 1 and sum(pushed.values()) == 306

    isolated = isolate.content(digest, len(isolate.isolated_of(files)))
    doc = json.loads(isolated)
    assert doc["version"] == "2.0" and doc["algo"] == isolate.digest_hash
    for rel, entry in doc["files"].items():  # then the files, each inflated and verified
        assert isolate.content(entry["h"], entry["s"]) == files[rel][0]
        assert entry["m"] == files[rel][1]


def test_a_second_archive_finds_everything_and_each_preupload_answers_an_empty_object(master):
    isolate = client(master, "default-gzip")
    files = tree(seed=99)
    isolate.archive(files)
    again = client(master, "default-gzip")
    _, pushed = again.archive(files)
    assert pushed == {"inline": 0, "url": 0}
    status, answer = again.preupload([(again.digest(b"x" * 10), 10, False)])
    assert status == 200 and [e["index"] for e in answer["items"]] == ["0"]  # int64 as a string
    content = files["src/d0/f0.txt"][0]
    status, answer = again.preupload([(again.digest(content), len(content), False)])
    assert (status, answer) == (200, {})  # all present: {}, not an empty body


@pytest.mark.parametrize("name", ["assets/bundle.zip", "assets/logo.png"])
def test_a_level_0_item_is_still_a_zlib_stream_and_comes_back_as_sent(master, name):
    isolate = client(master, "default-gzip")
    content = os.urandom(3000) + name.encode()
    _, pushed = isolate.archive({name: (content, 0o644)})
    sent = isolate.stored(content, name)
    assert sent[:2] == b"\x78\x01"  # zlib header of level 0: stored blocks, no gzip framing
    assert isolate.fetch(isolate.digest(content)) == sent
    assert isolate.content(isolate.digest(content), len(content)) == content


def test_retrieve_from_an_offset_inline_and_through_the_url_with_its_content_range(master):
    isolate = client(master, "default-gzip")
    small, big = b"small item " * 20, os.urandom(50_000)
    isolate.archive({"small.txt": (small, 0o644), "big.bin": (big, 0o644)})
    for content in (small, big):
        whole = isolate.fetch(isolate.digest(content))
        assert isolate.fetch(isolate.digest(content), offset=7) == whole[7:]
    status, answer = isolate.retrieve(isolate.digest(big))
    assert status == 200 and answer["url"].startswith(master.url)  # over retrieve_inline_max_bytes: a URL


def test_a_missing_digest_is_a_404_json_error_which_the_client_does_not_retry(master):
    isolate = client(master, "sha256-raw")
    answer = isolate.http("POST", f"{master.url}{V1}/retrieve",
                          json.dumps({"digest": "0" * 64, "namespace": isolate.namespace_object, "offset": 0},
                                     sort_keys=True, separators=(",", ":")).encode(),
                          {"Content-Type": JSON_TYPE})
    # a 404 is retried only when its Content-Type is not application/json
    assert answer.status == 404 and answer.headers["Content-Type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == 404 and "is not stored" in error["message"] and error["errors"][0]["message"]


def test_without_the_anonymous_scopes_the_recorded_client_is_refused(master):
    isolate = client(master, CLOSED_NAMESPACE)
    status, answer = isolate.preupload([("a" * 40, 1, False)])
    assert status == 401 and "cas:write:private-gzip" in answer["error"]["message"]
    status, answer = isolate.retrieve("a" * 40)
    assert status == 401 and "cas:read:private-gzip" in answer["error"]["message"]


def test_a_bad_upload_is_a_clear_400_not_a_retried_5xx(master):
    isolate = client(master, "default-gzip")
    content = b"what the digest says"
    _, answer = isolate.preupload([(isolate.digest(content), len(content), False)])
    ticket = answer["items"][0]["upload_ticket"]
    body = {"content": base64.b64encode(isolate.stored(b"something else")).decode(), "upload_ticket": ticket}
    status, error = isolate.call("store_inline", body)
    assert status == 400 and "refused" in error["error"]["message"]


def test_server_details_answers_an_object_the_client_may_ignore(master):
    status, answer = client(master, "default-gzip").call("server_details", {})
    assert status == 200 and answer["server_version"].startswith("buildfarm-")


@pytest.mark.parametrize("path", ["/auth/api/v1/server/oauth_config", "/auth/api/v1/accounts/self"])
def test_the_sign_in_of_a_client_without_auth_disabled_is_a_404_it_does_not_retry(master, path):
    # Without --auth-disabled the client asks these first (GETs without a body).  The master
    # takes no Google OAuth: a 404 ends the client ("Failed to fetch identify"), at once only
    # when its Content-Type is JSON (a 404 on an /api/ path is otherwise retried for minutes).
    answer = client(master, "default-gzip").http("GET", f"{master.url}{path}")
    assert answer.status == 404 and answer.headers["Content-Type"] == "application/json"
    message = answer.json()["error"]["message"]
    assert "--auth-disabled" in message and "anonymous_scopes" in message
