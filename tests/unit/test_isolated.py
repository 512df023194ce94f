"""The .isolated format: parsing with clear errors, canonical serialisation, include resolution."""

import json

import pytest
from twisted.internet import defer

from buildfarm.common.isolated import (
    FileEntry,
    Isolated,
    IsolatedFormatError,
    algo_for_namespace,
    digest_of,
    effective_read_only,
    hash_of,
    normalise_path,
    parse,
    resolve,
    serialise,
)

H1 = "a" * 40
H2 = "b" * 40


def doc(**kw):
    base = {"algo": "sha-1", "version": "1.4"}
    base.update(kw)
    return json.dumps(base).encode()


def test_parse_reads_files_links_modes_and_run_settings():
    iso = parse(doc(files={"bin/tool": {"h": H1, "s": 12, "m": 0o750}, "ln": {"l": "bin/tool"},
                           "data\\x.txt": {"h": H2, "s": 0}},
                    includes=[H2], command=["python", "run.py"], relative_cwd="bin", read_only=1))
    assert iso.files["bin/tool"] == FileEntry(digest=H1, size=12, mode=0o750)
    assert iso.files["ln"].is_link and iso.files["ln"].link == "bin/tool"
    assert "data/x.txt" in iso.files  # backslashes converted on load
    assert iso.includes == (H2,)
    assert iso.command == ("python", "run.py")
    assert (iso.relative_cwd, iso.read_only) == ("bin", 1)


@pytest.mark.parametrize("path", ["/etc/passwd", "a/../b", "..", "a/", "a//b", "./a", "C:/x", ""])
def test_bad_paths_are_refused(path):
    with pytest.raises(IsolatedFormatError, match="path"):
        parse(doc(files={path: {"h": H1, "s": 1}}))


@pytest.mark.parametrize("entry,message", [
    ({"h": H1}, "both 'h' and 's'"),
    ({"s": 1}, "both 'h' and 's'"),
    ({"l": "x", "m": 0o644}, "symlink"),
    ({"h": H1, "s": -1}, "non-negative"),
    ({"h": H1, "s": 1, "m": 0o17777}, "'m'"),
    ({"h": "XYZ", "s": 1}, "sha-1 digest"),
    ({"h": "c" * 64, "s": 1}, "sha-1 digest"),
    ({"h": H1, "s": 1, "t": "tar"}, "not supported"),
    ({"h": H1, "s": 1, "q": 1}, "unknown keys"),
    ("nope", "must be an object"),
])
def test_bad_entries_say_what_is_wrong(entry, message):
    with pytest.raises(IsolatedFormatError, match=message):
        parse(doc(files={"f": entry}))


@pytest.mark.parametrize("data,message", [
    (b"\xff", "not a JSON"),
    (b"[1]", "JSON object"),
    (doc(version="3.0"), "not supported"),
    (doc(version=1), "MAJOR.MINOR"),
    (doc(algo="md5"), "unknown algo"),
    (doc(version="2.0", command=["x"]), "removed in 2.0"),
    (doc(version="2.0", read_only=1), "removed in 2.0"),
    (doc(read_only=3), "read_only"),
    (doc(includes=H1), "list of digests"),
    (doc(command="ls -l"), "list of strings"),
    (doc(extra=1), "unknown keys"),
])
def test_bad_documents_say_what_is_wrong(data, message):
    with pytest.raises(IsolatedFormatError, match=message):
        parse(data)


def test_version_2_and_minor_bumps_are_accepted():
    assert parse(doc(version="2.0", files={"f": {"h": H1, "s": 1}})).version == "2.0"
    assert parse(doc(version="1.9")).version == "1.9"


def test_algo_must_agree_with_the_namespace():
    assert algo_for_namespace("default-gzip") == "sha-1"
    assert algo_for_namespace("sha256-deflate") == "sha-256"
    assert algo_for_namespace("sha512-gzip") == "sha-512"
    with pytest.raises(IsolatedFormatError, match="does not match the namespace"):
        parse(doc(), algo="sha-256")
    iso = parse(doc(algo="sha-256", files={"f": {"h": "c" * 64, "s": 3}}), algo="sha-256")
    assert iso.files["f"].digest == "c" * 64


def test_serialisation_is_canonical_and_round_trips():
    files = {"z": FileEntry(digest=H1, size=1, mode=0o644), "a": FileEntry(link="z")}
    one = Isolated(files=files, command=("run",), read_only=1)
    other = Isolated(files=dict(reversed(list(files.items()))), command=("run",), read_only=1)
    data = serialise(one)
    assert data == serialise(other)
    assert b" " not in data
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    assert parse(data) == parse(serialise(parse(data)))
    assert hash_of(one) == digest_of(data, "sha-1") == hash_of(other)


def test_canonical_hash_is_stable_across_runs():
    # a fixed document has a fixed hash, today and in every later run
    iso = Isolated(files={"a/b": FileEntry(digest=H1, size=5, mode=0o755), "l": FileEntry(link="a/b")},
                   includes=(H2,), read_only=1)
    assert serialise(iso) == (b'{"algo":"sha-1","files":{"a/b":{"h":"' + H1.encode()
                              + b'","m":493,"s":5},"l":{"l":"a/b"}},"includes":["' + H2.encode()
                              + b'"],"read_only":1,"version":"1.4"}')
    assert hash_of(iso) == digest_of(serialise(iso), "sha-1")


def test_effective_read_only():
    assert effective_read_only(parse(doc(version="2.0"))) == 1
    assert effective_read_only(parse(doc())) == 0
    assert effective_read_only(parse(doc(read_only=2))) == 2


def test_normalise_path_converts_backslashes():
    assert normalise_path("a\\b\\c") == "a/b/c"


class Store:
    def __init__(self):
        self.items = {}
        self.fetched = []

    def put(self, iso):
        data = serialise(iso)
        digest = digest_of(data, iso.algo)
        self.items[digest] = data
        return digest

    async def fetch(self, digest):
        self.fetched.append(digest)
        return self.items[digest]


def run(coro):
    d = defer.ensureDeferred(coro)
    results = []
    d.addBoth(results.append)
    assert results, "resolve did not finish synchronously"
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


def test_resolve_merges_includes_root_first_then_earlier_includes():
    store = Store()
    late = store.put(Isolated(files={"x": FileEntry(digest="3" * 40, size=3), "late": FileEntry(link="x")}))
    two = FileEntry(digest="2" * 40, size=2)
    early = store.put(Isolated(files={"x": two, "y": two}))
    root = store.put(Isolated(files={"y": FileEntry(digest="1" * 40, size=1)}, includes=(early, late),
                              command=("go",)))
    tree = run(resolve(root, store.fetch))
    assert tree.files["y"].digest == "1" * 40  # root wins
    assert tree.files["x"].digest == "2" * 40  # earlier include wins
    assert tree.files["late"].link == "x"
    assert tree.root.command == ("go",)
    assert tree.isolated_digests == (root, early, late)


def test_resolve_fetches_a_diamond_include_once():
    store = Store()
    shared = store.put(Isolated(files={"s": FileEntry(digest=H1, size=1)}))
    a = store.put(Isolated(files={"a": FileEntry(digest=H1, size=1)}, includes=(shared,)))
    b = store.put(Isolated(files={"b": FileEntry(digest=H1, size=1)}, includes=(shared,)))
    root = store.put(Isolated(includes=(a, b)))
    tree = run(resolve(root, store.fetch))
    assert set(tree.files) == {"a", "b", "s"}
    assert store.fetched.count(shared) == 1


def test_resolve_refuses_a_cycle_in_includes():
    # With content hashes a real cycle needs a collision, so the fetch function serves a
    # forged graph and the resolver is told not to verify (as when its store already did).
    a, b, c = "a" * 40, "b" * 40, "c" * 40
    graph = {a: Isolated(includes=(b,)), b: Isolated(includes=(c,)), c: Isolated(includes=(b,))}

    async def forged_fetch(digest):
        return serialise(graph[digest])

    with pytest.raises(IsolatedFormatError, match=f"cycle in includes: {b} -> {c} -> {b}"):
        run(resolve(a, forged_fetch, verify=False))


def test_resolve_refuses_content_that_does_not_match_its_digest():
    async def lying_fetch(digest):
        return serialise(Isolated())

    with pytest.raises(IsolatedFormatError, match="has content hashing to"):
        run(resolve("a" * 40, lying_fetch))


@pytest.mark.parametrize("isolated", [
    Isolated(),
    Isolated(algo="sha-256", version="2.0", files={
        'dir/é "quoted"\\back': FileEntry(digest="a" * 64, size=0),
        "a/link": FileEntry(link='../tab\there "x"'),
        "z": FileEntry(digest="b" * 64, size=12345678901, mode=0o755),
        "A\u2028": FileEntry(digest="c" * 64, size=1, mode=0)}),
    Isolated(files={"f": FileEntry(digest=H1, size=3)}, includes=(H1,), command=("run", "ünï"),
             relative_cwd="a/b", read_only=2),
])
def test_the_fast_serialiser_writes_what_json_dumps_writes(isolated):
    expected = json.dumps(isolated.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert serialise(isolated) == expected.encode("utf-8")
