"""``/browse`` in a real headless Chromium against a real master process: a tree of files uploaded
through the master's real Isolate HTTP API (preupload, then store_inline or PUT + finalize, as
Isolate's clients do), opened from the form in the pages' header; its directories, sizes,
modes and symlink shown; a click on a file shows its text; a download gives its bytes."""

import base64
import hashlib
import json
import os
import re
import urllib.request
import zlib

import pytest
from browserkit import HTTP_TIMEOUT_S, login, screenshot

from fixtures.daemons import TEST_PASSWORD, TEST_USER, Fleet

API = "/_ah/api/isolateservice/v1"
NAMESPACE = "default-gzip"


class Uploader:
    """Items into a master's store through its Isolate v1 API, as Isolate's clients send them."""

    def __init__(self, master):
        self.master = master

    def call(self, name: str, body: dict) -> dict:
        status, answer = self.master.request("POST", f"{API}/{name}", body)
        assert status == 200, (name, status, answer)
        return json.loads(answer)

    def put(self, url: str, data: bytes) -> None:
        token = base64.b64encode(f"{TEST_USER}:{TEST_PASSWORD}".encode()).decode()
        request = urllib.request.Request(url, data=data, method="PUT",
                                         headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            assert response.status == 200
            md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
            assert response.headers["x-goog-hash"] == f"md5={md5}"

    def upload(self, contents: list[bytes], is_isolated: bool = False) -> list[str]:
        """Store each of ``contents``; their digests."""
        digests = [hashlib.sha1(content).hexdigest() for content in contents]
        items = [{"digest": d, "size": len(c), "is_isolated": is_isolated} for d, c in zip(digests, contents,
                                                                                             strict=True)]
        missing = self.call("preupload", {"namespace": NAMESPACE, "items": items}).get("items", [])
        for entry in missing:
            stored = zlib.compress(contents[int(entry["index"])])
            if "gs_upload_url" in entry:
                self.put(entry["gs_upload_url"], stored)
                self.call("finalize_gs_upload", {"upload_ticket": entry["upload_ticket"]})
            else:
                self.call("store_inline", {"upload_ticket": entry["upload_ticket"],
                                           "content": base64.b64encode(stored).decode()})
        return digests

    def isolated(self, doc: dict) -> str:
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        return self.upload([data], is_isolated=True)[0]


RUN_SH = b"#!/bin/sh\necho 'hello from the tree'\n"
README = "Read me: the tree's text, ünïcode too.\n".encode() * 40  # over the inline limit: a PUT
BLOB = os.urandom(5000)
HELPER = b"def helper():\n    return 42\n"


@pytest.fixture(scope="module")
def store_master(tmp_path_factory):
    """A master of its own (no slaves needed) holding a tree uploaded through its API."""
    fleet = Fleet(str(tmp_path_factory.mktemp("cas-browse")))
    try:
        master = fleet.master()
        up = Uploader(master)
        run, readme, blob, helper = up.upload([RUN_SH, README, BLOB, HELPER])
        include = up.isolated({"algo": "sha-1", "version": "1.4", "files": {
            "src/lib/helper.py": {"h": helper, "s": len(HELPER), "m": 0o644}}})
        root = up.isolated({"algo": "sha-1", "version": "1.4", "command": ["sh", "run.sh"], "read_only": 1,
                            "includes": [include], "files": {
                                "run.sh": {"h": run, "s": len(RUN_SH), "m": 0o755},
                                "docs/README.txt": {"h": readme, "s": len(README), "m": 0o644},
                                "data/blob.bin": {"h": blob, "s": len(BLOB), "m": 0o600},
                                "start": {"l": "run.sh"}}})
        yield master, root, include
    finally:
        fleet.stop_all()


def test_a_tree_opened_from_the_form_shows_dirs_sizes_modes_a_symlink_text_and_downloads(store_master, page):
    master, root, include = store_master
    login(page, master.url, TEST_USER, TEST_PASSWORD)
    page.click("#browse-link")
    page.fill("#browse-form input[name=digest]", root)
    page.click("#browse-form button[type=submit]")
    page.wait_for_selector("#tree")
    assert root in page.locator("h1").inner_text()

    rows = page.locator("#tree tbody tr")
    paths = [rows.nth(i).get_attribute("data-path") for i in range(rows.count())]
    assert paths == ["data", "data/blob.bin", "docs", "docs/README.txt", "run.sh", "src", "src/lib",
                     "src/lib/helper.py", "start"]
    assert [p for p in paths if page.get_attribute(f"tr[data-path='{p}']", "data-kind") == "dir"] == [
        "data", "docs", "src", "src/lib"]
    run = page.locator("tr[data-path='run.sh']")
    assert run.locator(".mode").inner_text() == "-rwxr-xr-x"
    assert run.locator(".size").get_attribute("data-bytes") == str(len(RUN_SH))
    assert page.locator("tr[data-path='data/blob.bin'] .mode").inner_text() == "-rw-------"
    assert page.locator("tr[data-path='data/blob.bin'] .size").inner_text() == "4.9 KiB"
    link = page.locator("tr[data-path='start']")
    assert re.search(r"start → run\.sh", link.inner_text())
    assert link.locator(".mode").inner_text() == "lrwxrwxrwx"
    helper_row = page.locator("tr[data-path='src/lib/helper.py']")
    assert helper_row.locator(f"a[title='{include}']").count() == 1  # it came from the include
    assert "sh run.sh" in page.locator("#isolated-command").inner_text()
    screenshot(page, "browse.png")

    # the symlink's target is a link to its row
    link.locator("a.target").click()
    assert page.url.endswith("#" + run.get_attribute("id"))

    # a click on a file's view link shows its text
    page.locator("tr[data-path='docs/README.txt'] a.view").click()
    page.wait_for_load_state()
    assert page.locator("body").inner_text().startswith("Read me: the tree's text, ünïcode too.")
    page.go_back()
    page.wait_for_selector("#tree")

    # the download gives the very bytes, under the file's name
    with page.expect_download() as download:
        page.locator("tr[data-path='data/blob.bin'] a.download").click()
    assert download.value.suggested_filename == "blob.bin"
    with open(download.value.path(), "rb") as f:
        assert f.read() == BLOB


def test_anonymous_visitors_are_asked_to_log_in_and_a_missing_item_is_a_404_page(store_master, page):
    master, root, _ = store_master
    response = page.goto(f"{master.url}/browse?namespace={NAMESPACE}&digest={root}")
    assert response.status == 401 and "Log in" in page.locator("#error-message").inner_text()
    login(page, master.url, TEST_USER, TEST_PASSWORD)
    response = page.goto(f"{master.url}/browse?namespace={NAMESPACE}&digest={'0' * 40}")
    assert response.status == 404
    assert "is not stored in namespace 'default-gzip'" in page.locator("#error-message").inner_text()


def test_a_big_tree_page_streamed_in_pieces_arrives_whole(store_master, page):
    master, _, _ = store_master
    up = Uploader(master)
    [blob] = up.upload([b"one of many\n"])
    files = {f"d{i % 10}/f{i:04}.txt": {"h": blob, "s": 12, "m": 0o644} for i in range(3000)}
    root = up.isolated({"algo": "sha-1", "version": "1.4", "files": files})  # ~2 MB of HTML: 8 pieces
    login(page, master.url, TEST_USER, TEST_PASSWORD)
    response = page.goto(f"{master.url}/browse?namespace={NAMESPACE}&digest={root}")
    assert response.status == 200 and response.headers.get("transfer-encoding") == "chunked"
    page.wait_for_selector("footer")
    assert page.locator("#tree tr[data-kind='file']").count() == 3000
    assert page.locator("tr[data-path='d9/f2999.txt'] .size").get_attribute("data-bytes") == "12"
    assert page.locator("#isolated-files").get_attribute("data-files") == "3000"
