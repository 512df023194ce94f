"""The ``isolateserver`` CLI, run as a user runs it, against a real master with c['cas']: a tree
of 1,000 files with symlinks and modes archived, archived again with zero uploads, downloaded
through an empty cache and then a warm one with zero fetches, a corrupt cache entry fetched
again, eviction under the cache's limits, and the errors a user meets (one line, no traceback)."""

import json
import os
import re
import stat
import subprocess

import pytest

from fixtures import docexamples
from fixtures.daemons import BIN_DIR, wait_for

V1 = "/_ah/api/isolateservice/v1"
DOC_URL = "http://127.0.0.1:8010"  # the master's URL in docs/cas.md's examples
WRITER_TOKEN = "writer-token-0123456789"
CONFIG = """\
from buildfarm.master.auth.users import User
c = BuildmasterConfig = {{}}
c['slaves'] = []
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['cas'] = {{'backend': 'file', 'upload_secret': 'cas-secret'}}
c['users'] = [
    User('writer', tokens=[{token!r}], scopes=['cas:write:default-gzip', 'cas:read:default-gzip']),
    User('reader', password='rpw', scopes=['cas:read:default-gzip']),
]
"""
FILES = 1000
STATS_RE = re.compile(r"isolateserver: (\d+) items checked: (\d+) hits(?: \(\d+ confirmed recently\))?, "
                      r"(\d+) misses; "
                      r"uploaded (\d+) items \([^)]*\), downloaded (\d+) items")


def isolateserver(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([os.path.join(BIN_DIR, "isolateserver"), *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def stats_of(result: subprocess.CompletedProcess) -> dict:
    match = STATS_RE.search(result.stderr)
    assert match, result.stderr
    keys = ("checked", "hits", "misses", "uploaded", "downloaded")
    return dict(zip(keys, map(int, match.groups()), strict=True))


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def make_tree(root: str, files: int = FILES, tag: str = "") -> str:
    """``files`` regular files of distinct content in nested directories, some executable, some
    read-only, one large, plus symlinks to a file and to a directory."""
    for i in range(files):
        sub = os.path.join(root, f"dir{i % 10}", f"sub{i % 3}")
        os.makedirs(sub, exist_ok=True)
        path = os.path.join(sub, f"file{i}.dat")
        with open(path, "wb") as f:
            f.write(f"{tag}content of file {i}\n".encode() * (1 + i % 40))
        if i % 10 == 1:
            os.chmod(path, 0o755)
        elif i % 10 == 2:
            os.chmod(path, 0o444)
    with open(os.path.join(root, "large.bin"), "wb") as f:
        f.write(os.urandom(300_000) + tag.encode())
    os.symlink("dir0/sub0/file0.dat", os.path.join(root, "link-to-file"))
    os.symlink("dir1", os.path.join(root, "link-to-dir"))
    return root


def tree_of(root: str) -> dict:
    """relpath -> ('l', target) | ('f', bytes, executable) for everything under ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(full))
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    out[rel] = ("f", f.read(), bool(st.st_mode & stat.S_IXUSR))
    return out


def store_listing(master) -> set:
    root = os.path.join(master.basedir, "cas", "default-gzip")
    return {(name, os.path.getsize(os.path.join(d, name))) for d, _, names in os.walk(root) for name in names
            if not d.endswith("tmp")}


@pytest.fixture
def cas_master(fleet):
    master = fleet.master(config=lambda pb_port, www_port: CONFIG.format(pb_port=pb_port, www_port=www_port,
                                                                          token=WRITER_TOKEN))
    wait_for(lambda: master.request("POST", f"{V1}/server_details", {})[0] == 200, "the master's web port")
    return master


def server_flags(master, *auth: str) -> list[str]:
    return ["-I", master.url, "--namespace", "default-gzip", *(auth or ("--token", WRITER_TOKEN))]


def test_archive_then_download_a_tree_cold_and_warm(cas_master, tmp_path):
    master = cas_master
    tree = make_tree(str(tmp_path / "tree"))
    digests = str(tmp_path / "digests.json")

    first = isolateserver("archive", *server_flags(master), "--digest-cache", digests, tree)
    assert first.returncode == 0, first.stderr
    digest, path = first.stdout.split()
    assert path == tree and re.fullmatch(r"[0-9a-f]{40}", digest)
    stats = stats_of(first)
    assert stats["checked"] == FILES + 2 and stats["misses"] == FILES + 2 and stats["uploaded"] == FILES + 2
    stored = store_listing(master)
    assert len(stored) == FILES + 2  # the files, the large one and the .isolated

    # archived again: the same hash, every item a hit, nothing uploaded, the store unchanged;
    # with the digest cache nothing is hashed and, the tree confirmed a moment ago, only its
    # .isolated is asked about; without it, every item is hashed and asked about
    all_hits = {"checked": FILES + 2, "hits": FILES + 2, "misses": 0, "uploaded": 0, "downloaded": 0}
    again = isolateserver("archive", *server_flags(master), "--digest-cache", digests, tree)
    assert again.returncode == 0 and again.stdout.split() == [digest, tree]
    assert stats_of(again) == all_hits
    assert "hashed 0 files" in again.stderr and f"({FILES + 1} confirmed recently)" in again.stderr
    rechecked = isolateserver("archive", *server_flags(master), "--no-digest-cache", tree)
    assert rechecked.returncode == 0 and rechecked.stdout.split() == [digest, tree]
    assert stats_of(rechecked) == all_hits and "confirmed recently" not in rechecked.stderr
    assert store_listing(master) == stored

    # downloaded through an empty cache (by the read-only user): the tree, byte for byte
    cache = str(tmp_path / "cache")
    reader = ("--user", "reader", "--password", "rpw")
    cold = isolateserver("download", *server_flags(master, *reader), "-s", digest, "-t",
                         str(tmp_path / "out1"), "--cache", cache)
    assert cold.returncode == 0, cold.stderr
    assert stats_of(cold)["downloaded"] == FILES + 2
    assert tree_of(str(tmp_path / "out1")) == tree_of(tree)
    mapped = tmp_path / "out1" / "dir1" / "sub1" / "file1.dat"
    assert stat.S_IMODE(os.stat(mapped).st_mode) == 0o555
    assert stat.S_IMODE(os.stat(tmp_path / "out1" / "dir0" / "sub0" / "file0.dat").st_mode) == 0o444
    assert os.readlink(tmp_path / "out1" / "link-to-dir") == "dir1"

    # through the warm cache: no fetch at all
    warm = isolateserver("download", *server_flags(master, *reader), "-s", digest, "-t",
                         str(tmp_path / "out2"), "--cache", cache)
    assert warm.returncode == 0, warm.stderr
    assert stats_of(warm) == {"checked": FILES + 2, "hits": FILES + 2, "misses": 0, "uploaded": 0,
                              "downloaded": 0}
    assert tree_of(str(tmp_path / "out2")) == tree_of(tree)

    # a corrupt entry (same size, other bytes) is a miss and is fetched again
    victim = os.path.join(cache, json.loads(open(os.path.join(cache, "state.json")).read())["items"][5][0])
    size = os.path.getsize(victim)
    os.chmod(victim, 0o644)
    with open(victim, "wb") as f:
        f.write(b"\0" * size)
    repaired = isolateserver("download", *server_flags(master, *reader), "-s", digest, "-t",
                             str(tmp_path / "out3"), "--cache", cache)
    assert repaired.returncode == 0, repaired.stderr
    assert (stats_of(repaired)["misses"], stats_of(repaired)["downloaded"]) == (1, 1)
    assert tree_of(str(tmp_path / "out3")) == tree_of(tree)

    # a single file with -f, written where asked
    one = isolateserver("download", *server_flags(master, *reader), "-f", digest, "copy.isolated",
                        "-t", str(tmp_path / "out4"), "--cache", cache)
    assert one.returncode == 0, one.stderr
    assert json.loads((tmp_path / "out4" / "copy.isolated").read_bytes())["files"]["link-to-dir"] == \
        {"l": "dir1"}


def test_the_cache_limits_evict_older_trees_and_say_when_a_tree_does_not_fit(cas_master, tmp_path):
    master = cas_master
    digests = {}
    for tag in ("a", "b"):
        tree = make_tree(str(tmp_path / f"tree-{tag}"), files=50, tag=tag)
        result = isolateserver("archive", *server_flags(master), "--no-digest-cache", tree)
        assert result.returncode == 0, result.stderr
        digests[tag] = result.stdout.split()[0]
    cache = str(tmp_path / "cache")
    limits = ("--max-items", "60", "--min-free-space", "0")
    first = isolateserver("download", *server_flags(master), "-s", digests["a"], "-t", str(tmp_path / "o-a"),
                          "--cache", cache, *limits)
    assert first.returncode == 0, first.stderr
    # tree b (52 items) fits only if tree a's (52) go: they are evicted, b's all kept
    second = isolateserver("download", *server_flags(master), "-s", digests["b"], "-t",
                           str(tmp_path / "o-b"), "--cache", cache, *limits)
    assert second.returncode == 0, second.stderr
    assert tree_of(str(tmp_path / "o-b")) == tree_of(str(tmp_path / "tree-b"))
    state = json.loads(open(os.path.join(cache, "state.json")).read())
    assert len(state["items"]) <= 60
    b_again = isolateserver("download", *server_flags(master), "-s", digests["b"], "-t",
                            str(tmp_path / "o-b2"), "--cache", cache, *limits)
    assert stats_of(b_again)["downloaded"] == 0  # none of the tree being mapped was evicted

    too_small = isolateserver("download", *server_flags(master), "-s", digests["a"], "-t",
                              str(tmp_path / "o-x"), "--cache", str(tmp_path / "small"),
                              "--max-items", "10", "--min-free-space", "0")
    line = one_line_error(too_small)
    assert "not enough space" in line and "would exceed max_items 10" in line and "protected" in line


def test_errors_are_one_line(cas_master, tmp_path):
    master = cas_master
    tree = make_tree(str(tmp_path / "tree"), files=3)
    reader = ("--user", "reader", "--password", "rpw")
    line = one_line_error(isolateserver("archive", *server_flags(master, *reader), tree))
    assert "preupload failed: HTTP 403" in line and master.url in line
    line = one_line_error(isolateserver("archive", *server_flags(master, "--token", "wrong"), tree))
    assert "HTTP 401" in line
    line = one_line_error(isolateserver("download", *server_flags(master), "-s", "0" * 40,
                                        "-t", str(tmp_path / "o"), "--cache", str(tmp_path / "c")))
    assert line == f"isolateserver: {'0' * 40} is not on {master.url} in namespace 'default-gzip'"
    line = one_line_error(isolateserver("archive", "-I", "http://127.0.0.1:1", tree))
    assert "cannot connect to http://127.0.0.1:1" in line
    line = one_line_error(isolateserver("archive", *server_flags(master), str(tmp_path / "nothing")))
    assert "cannot archive" in line and "No such file" in line
    bad_flags = isolateserver("download", *server_flags(master), "-s", "xyz", "-t", str(tmp_path / "o"))
    assert bad_flags.returncode == 2 and len(bad_flags.stderr.strip().splitlines()) == 1
    assert "-s: 'xyz' is not a sha-1 digest" in bad_flags.stderr
    assert isolateserver("download", "--max-items", "many").returncode == 2


def test_content_that_does_not_match_its_digest_is_refused(cas_master, tmp_path):
    """A digest cache that lies (a file rewritten with its size and mtime kept) gives a digest
    the content does not have: the upload is refused, clearly, and nothing is stored for it."""
    master = cas_master
    tree = make_tree(str(tmp_path / "tree"), files=2)
    victim = os.path.join(tree, "dir1", "sub1", "file1.dat")
    digests = str(tmp_path / "digests.json")
    isolateserver("archive", "-I", "http://127.0.0.1:1", "--digest-cache", digests, tree)  # fills the cache
    st = os.stat(victim)
    os.chmod(victim, 0o644)
    with open(victim, "r+b") as f:
        f.write(b"X")
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    line = one_line_error(isolateserver("archive", *server_flags(master), "--digest-cache", digests, tree))
    assert "changed while archiving" in line and victim in line
    assert len(store_listing(master)) < 4


def make_doc_tree(cwd) -> None:
    """The tree the examples of docs/cas.md archive: its hash is the one shown there."""
    os.makedirs(cwd / "tree" / "bin")
    (cwd / "tree" / "hello.txt").write_bytes(b"hello\n")
    (cwd / "tree" / "bin" / "run.sh").write_bytes(b"#!/bin/sh\ncat hello.txt\n")
    os.chmod(cwd / "tree" / "hello.txt", 0o644)
    os.chmod(cwd / "tree" / "bin" / "run.sh", 0o755)
    os.symlink("hello.txt", cwd / "tree" / "greeting")


def run_example(lines: list[list[str]], master, cwd) -> list[subprocess.CompletedProcess]:
    """Each ``$ `` line of a console example of docs/cas.md, on ``master``, in ``cwd``."""
    results = []
    for argv in lines:
        assert argv[0] == "isolateserver", argv
        argv = [master.url if arg == DOC_URL else arg for arg in argv[1:]]
        result = subprocess.run([os.path.join(BIN_DIR, "isolateserver"), *argv], capture_output=True,
                                text=True, timeout=120, cwd=cwd, stdin=subprocess.DEVNULL,
                                env={**os.environ, "ISOLATE_TOKEN": WRITER_TOKEN, "XDG_CACHE_HOME": str(cwd)})
        assert result.returncode == 0, (argv, result.stderr)
        results.append(result)
    return results


def shown_output(text: str) -> str:
    """What a console example shows besides its ``$ `` lines."""
    return "".join(line + "\n" for line in text.splitlines() if not line.startswith("$ "))


def test_the_client_examples_of_the_docs_run_as_shown(cas_master, tmp_path):
    make_doc_tree(tmp_path)
    archived = run_example(docexamples.commands("cas.md", "cli-archive"), cas_master, tmp_path)
    assert "".join(r.stdout for r in archived) == shown_output(docexamples.example("cas.md", "cli-archive"))
    # the statistics line as shown, but for the seconds
    seconds = re.compile(r"\d+\.\d\d s$", re.M)
    shown = docexamples.example("cas.md", "cli-stats")
    assert seconds.sub("S", archived[0].stderr) == seconds.sub("S", shown)

    downloaded = run_example(docexamples.commands("cas.md", "cli-download"), cas_master, tmp_path)
    assert all(r.stdout == "" for r in downloaded)
    assert tree_of(str(tmp_path / "out")) == tree_of(str(tmp_path / "tree"))
    assert (tmp_path / "hello-copy.txt").read_bytes() == b"hello\n"
    assert os.path.isfile(tmp_path / "cache" / "state.json")
