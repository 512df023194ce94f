"""``/browse`` (master/cas/browse.py) rendered in memory on a real in-memory master (its auth and
its web UI's templates) over a real file store: an .isolated tree with includes, symlinks,
modes and nested directories; the file page; downloads inflated in pieces; the text view with
its cap and its binary note; errors; who may look."""

import base64
import json
import os
from html.parser import HTMLParser

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.error import ConnectionDone
from twisted.python import threadable
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from buildfarm.common.isolated import digest_of
from buildfarm.master.cas import browse
from buildfarm.master.cas.browse import CASBrowser, browse_url, content_url
from buildfarm.master.cas.filestore import FileStore
from buildfarm.master.cas.namespaces import parse_namespace
from buildfarm.master.http.routes import PUBLIC
from buildfarm.master.www.ui import app
from buildfarm.master.www.ui.app import WebUI
from fixtures.memoryhttp import MemoryRequest, render, render_request
from fixtures.memorymaster import (
    MASTER_CFG,
    memory_master_fixture,
    start_memory_master,
    with_fast_password_checks,
)
from tests.fixtures.docexamples import example

ADMIN = {"Authorization": "Basic " + base64.b64encode(b"admin:adm1n").decode()}
GZIP = parse_namespace("default-gzip")
PLAIN = parse_namespace("sha256-plain")
master = memory_master_fixture(MASTER_CFG)


class Elements(HTMLParser):
    """Every element of a page with an ``id`` or a ``data-path``: its attributes and its text."""

    def __init__(self, html: str):
        super().__init__()
        self.found: dict[str, dict] = {}
        self.open: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for each in self.open:
            each.setdefault("links", []).extend([attrs["href"]] if tag == "a" and "href" in attrs else [])
        key = attrs.get("data-path") or attrs.get("id")
        if key and tag not in ("input", "a", "link", "meta"):
            element = {"tag": tag, "attrs": attrs, "text": "", "depth": 0}
            self.found[key] = element
            self.open.append(element)
        for each in self.open:
            each["depth"] += 1

    def handle_endtag(self, tag):
        for each in self.open:
            each["depth"] -= 1
        self.open = [each for each in self.open if each["depth"] > 0]

    def handle_data(self, data):
        for each in self.open:
            each["text"] += data


@pytest.fixture
def pool():
    threads = ThreadPool(minthreads=1, maxthreads=2, name="cas-browse-test")
    threads.start()
    yield threads
    threads.stop()


@pytest.fixture
def store(master, tmp_path, pool):
    return FileStore(str(tmp_path / "cas"), master.reactor, pool)


@pytest.fixture
def browser(master, store, pool):
    with_fast_password_checks(master)
    ui = WebUI(master)
    return CASBrowser(master, lambda: store, ui.render, ui.stream_off_thread, master.reactor, pool)


async def put(store, content: bytes, namespace=GZIP) -> str:
    digest = digest_of(content, algo="sha-256" if namespace.algorithm == "sha256" else "sha-1")
    await store.put(namespace, digest, len(content), namespace.compress(content))
    return digest


def manifest(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


async def get(browser, path: str, args: dict | None = None, headers=None):
    headers = ADMIN if headers is None else headers
    return await render(browser.resource(), "GET", path, args=args, headers=headers)


async def page(browser, args: dict) -> tuple[int, Elements, str]:
    response = await get(browser, "/browse", args)
    html = response.body.decode()
    return response.code, Elements(html), html


RUN_SH = b"#!/bin/sh\necho hello\n"
A_TXT = b"alpha\n" * 100
B_BIN = bytes(range(256)) * 4
X_PY = b"print('included')\n"
SHADOWED = b"the include's run.sh, hidden by the root's\n"


async def tree(store) -> dict:
    """A root .isolated (1.4) including another: modes, a nested dir, a symlink, a shadowed path."""
    digests = {name: await put(store, content) for name, content in
               (("run.sh", RUN_SH), ("a.txt", A_TXT), ("b.bin", B_BIN), ("x.py", X_PY), ("old", SHADOWED))}
    include = manifest({"algo": "sha-1", "version": "1.4", "files": {
        "lib/x.py": {"h": digests["x.py"], "s": len(X_PY), "m": 0o644},
        "run.sh": {"h": digests["old"], "s": len(SHADOWED), "m": 0o600}}})
    digests["include"] = await put(store, include)
    root = manifest({"algo": "sha-1", "version": "1.4", "command": ["sh", "run.sh", "--fast"],
                     "relative_cwd": "data", "read_only": 1, "includes": [digests["include"]], "files": {
                         "run.sh": {"h": digests["run.sh"], "s": len(RUN_SH), "m": 0o755},
                         "data/a.txt": {"h": digests["a.txt"], "s": len(A_TXT), "m": 0o644},
                         "data/deep/er/b.bin": {"h": digests["b.bin"], "s": len(B_BIN), "m": 0o400},
                         "data/link": {"l": "a.txt"},
                         "data/dangling": {"l": "../nowhere"}}})
    digests["root"] = await put(store, root)
    return digests


@pytest_twisted.ensureDeferred
async def test_a_tree_shows_its_directories_files_modes_sizes_symlinks_and_run_settings(browser, store):
    digests = await tree(store)
    code, found, _ = await page(browser, {"namespace": "default-gzip", "digest": digests["root"]})
    assert code == 200
    rows = [key for key, e in found.found.items() if "data-kind" in e["attrs"]]
    assert rows == ["data", "data/a.txt", "data/dangling", "data/deep", "data/deep/er", "data/deep/er/b.bin",
                    "data/link", "lib", "lib/x.py", "run.sh"]
    kinds = {key: found.found[key]["attrs"]["data-kind"] for key in rows}
    assert [k for k in rows if kinds[k] == "dir"] == ["data", "data/deep", "data/deep/er", "lib"]
    run = found.found["run.sh"]
    assert "-rwxr-xr-x" in run["text"] and "this" in run["text"]
    assert "-r--------" in found.found["data/deep/er/b.bin"]["text"]
    assert "1.0 KiB" in found.found["data/deep/er/b.bin"]["text"]
    assert "600 B" in found.found["data/a.txt"]["text"]
    assert browse.size_text(len(A_TXT) + len(B_BIN)) == "1.6 KiB" and "1.6 KiB" in found.found["data"]["text"]
    assert "4 entries" in found.found["data"]["text"]
    link = found.found["data/link"]
    assert "lrwxrwxrwx" in link["text"] and "link → a.txt" in link["text"]
    assert link["links"] == ["#" + found.found["data/a.txt"]["attrs"]["id"]]  # a link to its target's row
    dangling = found.found["data/dangling"]
    assert "→ ../nowhere" in dangling["text"] and not dangling.get("links")
    assert found.found["isolated-command"]["text"] == "sh run.sh --fast"
    assert found.found["isolated-cwd"]["text"] == "data"
    assert found.found["isolated-read-only"]["text"].startswith("1 (mapped as 1: files read-only)")
    assert found.found["isolated-version"]["text"] == "1.4 (sha-1)"
    assert found.found["isolated-files"]["attrs"]["data-files"] == "6"


@pytest_twisted.ensureDeferred
async def test_includes_are_merged_as_clients_resolve_them_and_each_file_names_its_isolated(browser, store):
    digests = await tree(store)
    _, found, _ = await page(browser, {"namespace": "default-gzip", "digest": digests["root"]})
    # The root's run.sh wins over the include's; lib/x.py comes from the include.
    assert found.found["run.sh"]["attrs"]["data-digest"] == digests["run.sh"]
    assert found.found["lib/x.py"]["attrs"]["data-digest"] == digests["x.py"]
    assert browse_url("default-gzip", digests["include"]) in found.found["lib/x.py"]["links"]
    assert "-rw-r--r--" in found.found["lib/x.py"]["text"]
    sources = found.found["isolated-sources"]["text"]
    assert sources.index(digests["root"]) < sources.index(digests["include"])


@pytest_twisted.ensureDeferred
async def test_each_file_links_to_its_download_and_text_view(browser, store):
    digests = await tree(store)
    _, found, _ = await page(browser, {"namespace": "default-gzip", "digest": digests["root"]})
    links = found.found["data/a.txt"]["links"]
    assert content_url("default-gzip", digests["a.txt"], "a.txt") in links
    assert content_url("default-gzip", digests["a.txt"], view=True) in links
    assert links[-2] == f"/browse/content?namespace=default-gzip&digest={digests['a.txt']}&as=a.txt"


@pytest_twisted.ensureDeferred
async def test_a_1000_file_tree_in_nested_directories_lists_every_file(browser, store):
    content = b"same content\n"
    digest = await put(store, content)
    files = {f"d{i % 10}/e{i % 7}/f{i}.txt": {"h": digest, "s": len(content), "m": 0o644}
             for i in range(1000)}
    root = await put(store, manifest({"algo": "sha-1", "version": "1.4", "files": files}))
    code, found, html = await page(browser, {"namespace": "default-gzip", "digest": root})
    assert code == 200
    assert sum(1 for e in found.found.values() if e["attrs"].get("data-kind") == "file") == 1000
    assert sum(1 for e in found.found.values() if e["attrs"].get("data-kind") == "dir") == 10 + 70
    assert found.found["d3"]["text"].count("100 entries") == 1
    assert len(html) < 1_000_000


@pytest_twisted.ensureDeferred
async def test_a_2_0_isolated_in_a_sha256_namespace_is_shown(browser, store):
    content = b"plain namespace\n"
    digest = await put(store, content, PLAIN)
    root = await put(store, manifest({"algo": "sha-256", "version": "2.0",
                                      "files": {"f": {"h": digest, "s": len(content)}}}), PLAIN)
    code, found, _ = await page(browser, {"namespace": "sha256-plain", "digest": root})
    assert code == 200
    assert found.found["isolated-version"]["text"] == "2.0 (sha-256)"
    assert "mapped as 1: files read-only" in found.found["isolated-read-only"]["text"]
    assert found.found["f"]["attrs"]["data-digest"] == digest


@pytest_twisted.ensureDeferred
async def test_a_plain_file_and_a_json_file_that_is_no_isolated_get_the_file_page(browser, store):
    for content in (A_TXT, b'{"name": "pkg", "version": "1.0.0", "files": ["a"]}'):
        digest = await put(store, content)
        code, found, _ = await page(browser, {"namespace": "default-gzip", "digest": digest})
        assert code == 200
        assert found.found["file-size"]["attrs"]["data-bytes"] == str(len(content))


@pytest_twisted.ensureDeferred
async def test_the_download_is_the_original_bytes_written_in_bounded_pieces(browser, store):
    content = os.urandom(300_000) * 10  # 3 MB, compressible: several pieces
    digest = await put(store, content)
    request = MemoryRequest("GET", "/browse/content")
    request.args = {b"namespace": [b"default-gzip"], b"digest": [digest.encode()],
                    b"as": [b"dir/../data.bin"]}
    request.requestHeaders.setRawHeaders(b"authorization", [ADMIN["Authorization"].encode()])
    response = await render_request(browser.resource(), request)
    assert response.code == 200
    assert response.body == content
    assert response.header("content-type") == "application/octet-stream"
    assert response.header("content-disposition").startswith('attachment; filename="data.bin"')
    written = [len(piece) for piece in request.body_written if piece]
    assert len(written) >= 3 and max(written) <= browse.INFLATED_PIECE_BYTES


@pytest_twisted.ensureDeferred
async def test_an_uncompressed_item_is_read_from_the_store_a_bounded_piece_at_a_time(browser, store):
    content = os.urandom(2 * browse.STORED_PIECE_BYTES + 10)
    digest = await put(store, content, PLAIN)
    data, total = await store.get(PLAIN, digest, browse.STORED_PIECE_BYTES, 5)
    assert (data, total) == (content[browse.STORED_PIECE_BYTES:browse.STORED_PIECE_BYTES + 5], len(content))
    sizes = [len(piece) async for piece in browser.pieces(PLAIN, digest)]
    assert sizes == [browse.STORED_PIECE_BYTES, browse.STORED_PIECE_BYTES, 10]


@pytest_twisted.ensureDeferred
async def test_a_zlib_bomb_is_inflated_one_bounded_piece_at_a_time(browser, store):
    content = b"\0" * (8 * browse.INFLATED_PIECE_BYTES)  # 8 MiB from a few kB stored
    digest = await put(store, content)
    sizes = [len(piece) async for piece in browser.pieces(GZIP, digest)]
    assert sum(sizes) == len(content) and max(sizes) <= browse.INFLATED_PIECE_BYTES


@pytest_twisted.ensureDeferred
async def test_the_text_view_is_utf8_text_with_replacement_for_bad_bytes(browser, store):
    digest = await put(store, "héllo\n".encode() + b"\xff\xfe bad\n")
    response = await get(browser, "/browse/content", {"namespace": "default-gzip", "digest": digest,
                                                      "view": "text"})
    assert response.code == 200 and response.header("content-type") == "text/plain; charset=utf-8"
    assert response.body.decode() == "héllo\n\ufffd\ufffd bad\n"
    assert response.header("x-content-type-options") == "nosniff"


@pytest_twisted.ensureDeferred
async def test_the_text_view_stops_at_its_cap_and_says_so(browser, store):
    content = b"line of text\n" * (browse.TEXT_VIEW_MAX_BYTES // 10)
    digest = await put(store, content)
    response = await get(browser, "/browse/content", {"namespace": "default-gzip", "digest": digest,
                                                      "view": "text"})
    text = response.body.decode()
    assert response.header("x-buildfarm-view") == "truncated"
    assert text.startswith("line of text\n") and len(text) < browse.TEXT_VIEW_MAX_BYTES + 1000
    assert f"[truncated: the first {browse.TEXT_VIEW_MAX_BYTES} bytes are shown" in text


@pytest_twisted.ensureDeferred
async def test_the_text_view_of_a_binary_file_is_a_note(browser, store):
    digest = await put(store, B_BIN)
    response = await get(browser, "/browse/content", {"namespace": "default-gzip", "digest": digest,
                                                      "view": "text"})
    assert response.header("x-buildfarm-view") == "binary"
    assert response.body.decode().startswith(f"[binary file ({len(B_BIN)} bytes): not shown as text")


@pytest_twisted.ensureDeferred
async def test_no_digest_gives_the_form(browser):
    code, found, html = await page(browser, {"namespace": "sha256-plain"})
    assert code == 200 and "browse-form" in found.found
    assert 'value="sha256-plain"' in html


@pytest.mark.parametrize("args, status, says", [
    ({"namespace": "default-gzip", "digest": "0" * 40}, 404, "is not stored in namespace"),
    ({"namespace": "nowhere", "digest": "0" * 40}, 404, "is not stored in namespace"),
    ({"namespace": "default-gzip", "digest": "XYZ"}, 400, "digest must be 40 lower-case hex digits"),
    ({"namespace": "default-gzip", "digest": "0" * 64}, 400, "digest must be 40 lower-case hex digits"),
    ({"namespace": "a/b", "digest": "0" * 40}, 400, "namespace must be"),
])
@pytest.mark.parametrize("path", ["/browse", "/browse/content"])
@pytest_twisted.ensureDeferred
async def test_bad_or_unknown_items_get_an_error_page_with_its_status(browser, path, args, status, says):
    response = await get(browser, path, args)
    found = Elements(response.body.decode())
    assert response.code == status and response.header("content-type") == "text/html; charset=utf-8"
    assert says in found.found["error-message"]["text"]


@pytest_twisted.ensureDeferred
async def test_a_bad_view_is_a_400(browser, store):
    digest = await put(store, A_TXT)
    response = await get(browser, "/browse/content", {"namespace": "default-gzip", "digest": digest,
                                                      "view": "hex"})
    assert response.code == 400 and b"view must be" in response.body


@pytest.mark.parametrize("doc, says", [
    ({"algo": "sha-1", "version": "1.4", "files": {"../up": {"h": "0" * 40, "s": 1}}}, "'..' component"),
    ({"algo": "sha-1", "version": "1.4", "files": {"f": {"h": "0" * 40, "s": -1}}}, "'s' must be"),
    ({"algo": "sha-256", "version": "1.4", "files": {}}, "does not match the namespace"),
    ({"algo": "sha-1", "version": "7.0", "files": {}}, "not supported"),
])
@pytest_twisted.ensureDeferred
async def test_a_corrupt_isolated_is_a_clear_error_page(browser, store, doc, says):
    digest = await put(store, manifest(doc))
    response = await get(browser, "/browse", {"namespace": "default-gzip", "digest": digest})
    message = Elements(response.body.decode()).found["error-message"]["text"]
    assert response.code == 422 and f"{digest} is a corrupt .isolated" in message and says in message
    assert b"Traceback" not in response.body


@pytest_twisted.ensureDeferred
async def test_an_include_cycle_and_a_missing_include_are_error_pages(browser, store):
    missing = "1" * 40
    root = await put(store, manifest({"algo": "sha-1", "version": "1.4", "includes": [missing]}))
    response = await get(browser, "/browse", {"namespace": "default-gzip", "digest": root})
    assert response.code == 404
    assert f"{missing}, included by the tree {root}, is not stored".encode() in response.body
    # a diamond (the same include twice, and through another include) is no cycle
    leaf = await put(store, manifest({"algo": "sha-1", "version": "1.4", "files": {}}))
    middle = await put(store, manifest({"algo": "sha-1", "version": "1.4", "includes": [leaf]}))
    diamond = await put(store, manifest({"algo": "sha-1", "version": "1.4",
                                         "includes": [middle, leaf, middle]}))
    response = await get(browser, "/browse", {"namespace": "default-gzip", "digest": diamond})
    assert response.code == 200


def test_an_include_cycle_is_refused_by_the_merge():
    # Digests cannot loop in a real store (a document would hold its own hash), so the merge's
    # refusal is tried on documents named by made-up digests.
    first, second = "1" * 40, "2" * 40
    documents = {first: manifest({"algo": "sha-1", "version": "1.4", "includes": [second]}),
                 second: manifest({"algo": "sha-1", "version": "1.4", "includes": [first]})}
    parsed = {digest: browse.parse(data) for digest, data in documents.items()}
    with pytest.raises(browse.IsolatedFormatError, match="cycle in includes"):
        browse.merge(first, documents, parsed, "sha-1")


def test_every_route_needs_cas_read_of_the_query_namespace():
    scopes = {r.endpoint: r.scope for r in CASBrowser.routes.routes}
    assert scopes == {"GET /browse": "cas:read:{namespace}", "GET /browse/content": "cas:read:{namespace}"}
    assert PUBLIC not in scopes.values()


async def site_master(tmp_path, config: str, pool):
    """A memory master whose web site (the real mounting of /browse) runs disk work on ``pool``:
    the memory reactor has no thread pool of its own."""
    farm = await start_memory_master(tmp_path, config)
    farm.reactor.getThreadPool = lambda: pool
    return farm


@pytest_twisted.ensureDeferred
async def test_anonymous_callers_need_cas_read_and_a_scope_of_another_namespace_is_not_enough(tmp_path, pool):
    config = MASTER_CFG + ("c['users'].append(util.User('other', password='0ther', "
                           "scopes=['cas:read:sha256-plain']))\n")
    farm = await site_master(tmp_path, config, pool)
    try:
        with_fast_password_checks(farm)
        site = farm.www.make_site().resource
        args = {"namespace": "default-gzip", "digest": "0" * 40}
        assert (await render(site, "GET", "/browse", args=args)).code == 401
        other = {"Authorization": "Basic " + base64.b64encode(b"other:0ther").decode()}
        refused = await render(site, "GET", "/browse/content", args=args, headers=other)
        assert refused.code == 403 and b"cas:read:default-gzip" in refused.body
        allowed = await render(site, "GET", "/browse/content", headers=other,
                               args={"namespace": "sha256-plain", "digest": "0" * 64})
        assert allowed.code == 404  # may look: it is just not stored
    finally:
        await farm.stopService()


@pytest_twisted.ensureDeferred
async def test_anonymous_scopes_from_the_docs_let_anonymous_callers_browse(tmp_path, pool):
    config = MASTER_CFG + example("cas.md", "browse-anonymous")
    farm = await site_master(tmp_path, config, pool)
    try:
        site = farm.www.make_site().resource
        content = b"anonymous may read this\n"
        digest = digest_of(content, "sha-1")
        await put(FileStore(os.path.join(str(tmp_path), "cas"), farm.reactor, pool), content)
        response = await render(site, "GET", "/browse", args={"namespace": "default-gzip", "digest": digest})
        assert response.code == 200 and b'data-bytes="24"' in response.body
        elsewhere = {"namespace": "sha256-x", "digest": "0" * 64}
        assert (await render(site, "GET", "/browse", args=elsewhere)).code == 401
    finally:
        await farm.stopService()


def test_browse_url_is_the_link_other_pages_give():
    digest = "a" * 40
    assert browse_url("default-gzip", digest) == f"/browse?namespace=default-gzip&digest={digest}"
    assert content_url("ns", digest, "a b.txt", view=True) == \
        f"/browse/content?namespace=ns&digest={digest}&as=a+b.txt&view=text"


def test_the_docs_browse_url_example_runs():
    exec(example("cas.md", "browse-url"), {})


@pytest_twisted.ensureDeferred
async def test_the_docs_urls_answer_the_tree_the_download_and_the_text_view(browser, store):
    digest = await put(store, RUN_SH)
    tree_url, download_url, view_url = example("cas.md", "browse-urls").replace("DIGEST", digest).split()
    answers = []
    for url in (tree_url, download_url, view_url):
        path, _, query = url.partition("?")
        args = dict(part.split("=") for part in query.split("&"))
        answers.append(await get(browser, path, args))
    assert [a.code for a in answers] == [200, 200, 200]
    assert b'id="file-size"' in answers[0].body
    assert answers[1].body == RUN_SH and 'filename="run.sh"' in answers[1].header("content-disposition")
    assert answers[2].body == RUN_SH and answers[2].header("content-type") == "text/plain; charset=utf-8"


def big_tree(files: int, digest: str, size: int) -> dict:
    return {"algo": "sha-1", "version": "1.4",
            "files": {f"d{i % 20}/e{i % 13}/file-{i:05}.txt": {"h": digest, "s": size, "m": 0o644}
                      for i in range(files)}}


@pytest_twisted.ensureDeferred
async def test_a_10000_file_tree_page_is_rendered_off_the_reactor_and_streamed(master, store, pool):
    with_fast_password_checks(master)
    ui = WebUI(master)
    rendered, pieces, ticks = [], [], []  # (template, context); per piece (in the reactor thread?, ticks)

    def spy(template, context):
        rendered.append((template, context))

        def watched():
            for piece in WebUI.page_pieces(ui, template, context):
                pieces.append((threadable.isInIOThread(), len(ticks)))
                yield piece
        return watched()

    ui.page_pieces = spy
    browser = CASBrowser(master, lambda: store, ui.render, ui.stream_off_thread, master.reactor, pool)
    content = b"same content\n"
    digest = await put(store, content)
    root = await put(store, manifest(big_tree(10_000, digest, len(content))))
    request = MemoryRequest("GET", "/browse")
    request.args = {b"namespace": [b"default-gzip"], b"digest": [root.encode()]}
    request.requestHeaders.setRawHeaders(b"authorization", [ADMIN["Authorization"].encode()])
    beat = task.LoopingCall(lambda: ticks.append(reactor.seconds()))
    beat.clock = reactor
    beat.start(0.005)
    try:
        response = await render_request(browser.resource(), request)
    finally:
        beat.stop()
    assert response.code == 200 and response.body.count(b'data-kind="file"') == 10_000
    [(template, context)] = rendered
    assert template == "cas_browse.html"
    assert len(pieces) > 10 and not any(on_reactor for on_reactor, _ in pieces)
    assert pieces[-1][1] > pieces[0][1]  # the reactor ran its timers while the page was made
    written = [len(piece) for piece in request.body_written if piece]
    assert len(written) == len(pieces) and max(written) < app.STREAM_PIECE_BYTES + 4096
    # the very bytes the web UI's plain render makes on the reactor thread
    assert response.body == WebUI.render_template(ui, template, context)
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert response.header("content-security-policy") is not None


@pytest_twisted.ensureDeferred
async def test_an_item_the_janitor_deletes_during_a_download_is_still_read_whole(browser, store):
    content = os.urandom(3 * browse.STORED_PIECE_BYTES + 7)
    digest = await put(store, content, PLAIN)
    pieces = browser.pieces(PLAIN, digest)
    try:
        got = [await pieces.__anext__()]
        os.remove(store.path_of(PLAIN, digest))  # what the janitor does to an expired item
        got += [piece async for piece in pieces]
    finally:
        await pieces.aclose()
    assert b"".join(got) == content


@pytest_twisted.ensureDeferred
async def test_a_failing_store_is_a_503_page_not_an_internal_error(browser, store):
    digest = "e" * 40
    os.makedirs(store.path_of(GZIP, digest))  # the item's path cannot be read: a disk error
    for path in ("/browse", "/browse/content"):
        response = await get(browser, path, {"namespace": "default-gzip", "digest": digest})
        message = Elements(response.body.decode()).found["error-message"]["text"]
        assert response.code == 503 and "The store cannot be read now" in message
        assert b"Traceback" not in response.body


class FailingReads:
    """A reader of a real stored item whose reads fail after the first (a disk dying mid-way)."""

    def __init__(self, reader):
        self.reader = reader
        self.reads = 0

    def read(self, size):
        self.reads += 1
        if self.reads > 1:
            raise OSError(5, "Input/output error")
        return self.reader.read(size)

    def close(self):
        self.reader.close()


@pytest_twisted.ensureDeferred
async def test_a_download_whose_reads_fail_half_way_is_cut_not_followed_by_an_error_page(browser, store):
    content = os.urandom(2 * browse.STORED_PIECE_BYTES)
    digest = await put(store, content, PLAIN)
    opened = store.open

    async def open_failing(*args):
        reader, total = await opened(*args)
        return FailingReads(reader), total

    store.open = open_failing
    request = MemoryRequest("GET", "/browse/content")
    request.args = {b"namespace": [b"sha256-plain"], b"digest": [digest.encode()]}
    request.requestHeaders.setRawHeaders(b"authorization", [ADMIN["Authorization"].encode()])
    transport = request.channel.transport
    response = await render_request(browser.resource(), request)
    assert response.code == 200 and response.body == content[:browse.STORED_PIECE_BYTES]
    assert transport.disconnected  # the client sees a download cut short


@pytest_twisted.ensureDeferred
async def test_a_client_that_leaves_mid_page_stops_its_rendering(master, store, pool):
    with_fast_password_checks(master)
    ui = WebUI(master)
    made = []

    def counted(template, context):
        try:
            for piece in WebUI.page_pieces(ui, template, context):
                made.append(len(piece))
                yield piece
        finally:
            made.append("closed")

    ui.page_pieces = counted
    browser = CASBrowser(master, lambda: store, ui.render, ui.stream_off_thread, master.reactor, pool)
    digest = await put(store, b"x")
    root = await put(store, manifest(big_tree(5_000, digest, 1)))
    request = MemoryRequest("GET", "/browse")
    request.args = {b"namespace": [b"default-gzip"], b"digest": [root.encode()]}
    request.requestHeaders.setRawHeaders(b"authorization", [ADMIN["Authorization"].encode()])
    write = request.write

    def write_then_leave(data):
        write(data)
        if not request._disconnected:
            request.connectionLost(Failure(ConnectionDone("the browser tab closed")))

    request.write = write_then_leave
    finished = request.notifyFinish()
    browser.resource().render(request)
    with pytest.raises(ConnectionDone):
        await finished
    deadline = reactor.seconds() + 20
    while "closed" not in made:
        assert reactor.seconds() < deadline, "the page's generator was never closed"
        await task.deferLater(reactor, 0.01, lambda: None)
    # of the page's ~14 pieces: one sent, at most one more made (before the departure was seen)
    assert made[-1] == "closed" and len(made) <= 3
    assert len([piece for piece in request.body_written if piece]) == 1
