"""The local content-addressed cache: LRU state, policies, eviction, corruption, mapping."""

import errno
import hashlib
import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest
from twisted.internet.task import Clock

from buildfarm.common.cascache import (
    CacheMiss,
    CachePolicies,
    ContentMismatch,
    DiskCache,
    MappingError,
    NoMoreSpace,
    remove_tree,
)
from buildfarm.common.isolated import FileEntry, IsolatedFormatError

NO_LIMITS = CachePolicies(max_cache_size=0, min_free_space=0, max_items=0, max_age_secs=0)


def sha1(data):
    return hashlib.sha1(data).hexdigest()


def blob(i, size=100):
    return (b"%06d" % i) * (size // 6) + b"x" * (size % 6)


@pytest.fixture
def clock():
    c = Clock()
    c.advance(1_000_000)
    return c


def new_cache(path, clock, policies=NO_LIMITS, **kw):
    return DiskCache(str(path), policies, clock, **kw)


def put(cache, data, clock=None):
    digest = sha1(data)
    cache.write(digest, [data], size=len(data))
    if clock is not None:
        clock.advance(1)
    return digest


def test_written_items_are_read_only_files_named_by_digest(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock)
    digest = put(cache, b"hello")
    path = cache.touch(digest)
    assert path == str(tmp_path / "c" / digest)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o444
    with open(path, "rb") as f:
        assert f.read() == b"hello"


def test_the_lru_state_survives_a_restart_in_order(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock)
    a, b, c = (put(cache, blob(i), clock) for i in range(3))
    cache.touch(a)  # a becomes most recently used
    cache.save()
    assert [n for n in os.listdir(tmp_path / "c") if n.startswith(".tmp-")] == []
    reloaded = new_cache(tmp_path / "c", clock)
    assert reloaded.digests() == [b, c, a]
    assert reloaded.total_size == 300


def test_content_that_does_not_match_its_digest_or_size_never_enters(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock)
    with pytest.raises(ContentMismatch, match="hashes to"):
        cache.write(sha1(b"expected"), [b"something else"])
    with pytest.raises(ContentMismatch):
        cache.write(sha1(b"abc"), [b"abc"], size=4)
    assert len(cache) == 0
    assert os.listdir(tmp_path / "c") == []


def test_a_stream_longer_than_its_size_is_cut_off(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock, CachePolicies(max_items=1, min_free_space=0))
    consumed = []

    def endless():
        while True:
            consumed.append(1)
            yield b"x" * 10

    with pytest.raises(ContentMismatch, match="longer than 25 bytes"):
        cache.write("a" * 40, endless(), size=25)
    assert len(consumed) == 3
    assert os.listdir(tmp_path / "c") == []
    assert cache.write(sha1(b"ok"), [b"ok"], size=2)  # the reservation (1 item of 1) was released


@pytest.mark.parametrize("digest", ["../../etc/passwd", "A" * 40, "a" * 39, "state.json"])
def test_digests_that_are_not_hex_are_refused(tmp_path, clock, digest):
    cache = new_cache(tmp_path / "c", clock)
    with pytest.raises(IsolatedFormatError):
        cache.write(digest, [b"x"])
    with pytest.raises(IsolatedFormatError):
        cache.touch(digest)


def fill(cache, clock, n):
    return [put(cache, blob(i), clock) for i in range(n)]


def test_eviction_by_max_cache_size_keeps_the_protected_item(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock, CachePolicies(max_cache_size=500, min_free_space=0))
    digests = fill(cache, clock, 5)
    with cache.protecting([digests[0]]):
        put(cache, blob(99))
        put(cache, blob(98))
    assert cache.evicted == [digests[1], digests[2]]  # the oldest unprotected go first
    assert cache.has(digests[0])
    assert cache.total_size == 500


def test_eviction_by_max_items_keeps_the_protected_item(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock, CachePolicies(max_items=3, min_free_space=0))
    digests = fill(cache, clock, 3)
    with cache.protecting([digests[0]]):
        put(cache, blob(99))
    assert cache.evicted == [digests[1]]
    assert len(cache) == 3 and cache.has(digests[0])


def test_eviction_by_min_free_space_keeps_the_protected_item(tmp_path, clock):
    disk = {"size": 1000}
    holder = []
    policies = CachePolicies(max_cache_size=0, min_free_space=400, max_items=0)
    cache = new_cache(tmp_path / "c", clock, policies,
                      free_space=lambda _path: disk["size"] - holder[0].total_size)
    holder.append(cache)
    digests = fill(cache, clock, 5)  # 500 used, 500 free
    with cache.protecting([digests[0]]):
        put(cache, blob(99))  # would leave 400 free: fine
        put(cache, blob(98))  # would leave 300: evicts the oldest unprotected
    assert cache.evicted == [digests[1]]
    assert cache.has(digests[0])


def test_eviction_by_max_age_keeps_the_protected_item(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock, CachePolicies(max_age_secs=3600, min_free_space=0))
    old = fill(cache, clock, 3)
    clock.advance(3600)
    fresh = put(cache, blob(99))
    cache.touch(old[2])  # used again: young
    with cache.protecting([old[0]]):
        evicted = cache.trim()
    assert evicted == [old[1]]
    assert set(cache.digests()) == {old[0], old[2], fresh}


def test_not_enough_space_says_the_numbers(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock, CachePolicies(max_cache_size=250, min_free_space=0))
    digests = fill(cache, clock, 2)
    with cache.protecting(digests), pytest.raises(NoMoreSpace) as raised:
        put(cache, blob(99))
    message = str(raised.value)
    assert "not enough space" in message
    assert "300 bytes would exceed max_cache_size 250" in message
    assert "2 protected items hold 200 bytes" in message
    assert cache.digests() == digests


def test_not_enough_free_disk_says_the_numbers(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock, CachePolicies(min_free_space=2048),
                      free_space=lambda _path: 2100)
    with pytest.raises(NoMoreSpace, match="2000 bytes free would be under min_free_space 2048"):
        cache.write(sha1(blob(1, 100)), [blob(1, 100)], size=100)


def test_a_corrupt_entry_is_a_miss_and_is_fetched_again(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock)
    data = blob(7)
    digest = put(cache, data)
    path = cache.path(digest)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:  # same size, other bytes, new mtime
        f.write(b"CORRUPT")
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))

    assert not cache.has(digest)
    assert not os.path.exists(path)  # dropped
    with pytest.raises(CacheMiss):
        cache.touch(digest)
    put(cache, data)  # the refetch
    with open(cache.touch(digest), "rb") as f:
        assert f.read() == data


def test_an_entry_touched_but_unchanged_is_rehashed_and_kept(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock)
    digest = put(cache, b"stable")
    os.utime(cache.path(digest), ns=(1, 1))
    assert cache.has(digest)
    assert cache.has(digest)


def test_a_missing_or_resized_entry_is_a_miss(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock)
    gone, resized = put(cache, b"one"), put(cache, b"two")
    os.unlink(cache.path(gone))
    os.chmod(cache.path(resized), 0o644)
    with open(cache.path(resized), "ab") as f:
        f.write(b"more")
    assert not cache.has(gone) and not cache.has(resized)
    assert len(cache) == 0


def test_cleanup_removes_unknown_files_and_a_corrupt_state_is_an_empty_cache(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock)
    kept = put(cache, b"kept")
    cache.save()
    (tmp_path / "c" / ".tmp-leftover").write_bytes(b"half")
    (tmp_path / "c" / sha1(b"stray")).write_bytes(b"stray")
    cache.cleanup()
    assert sorted(os.listdir(tmp_path / "c")) == sorted([kept, "state.json"])

    (tmp_path / "c" / "state.json").write_text("{broken")
    fresh = new_cache(tmp_path / "c", clock)
    assert len(fresh) == 0
    fresh.cleanup()
    assert os.listdir(tmp_path / "c") == ["state.json"]
    assert json.loads((tmp_path / "c" / "state.json").read_text())["items"] == []


# -- mapping ------------------------------------------------------------------------------

def cached_tree(cache, n=1000):
    files = {}
    for i in range(n):
        data = blob(i % 50, 20)
        digest = sha1(data)
        if not cache.has(digest):
            cache.write(digest, [data], size=len(data))
        files[f"d{i % 10}/f{i:04d}"] = FileEntry(digest=digest, size=len(data),
                                                 mode=0o750 if i % 100 == 0 else 0o640)
    files["d0/plain"] = FileEntry(digest=sha1(blob(0, 20)), size=20)
    files["link"] = FileEntry(link="d0/f0000")
    return files


def test_map_tree_hardlinks_read_only_files_and_copies_other_modes(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock)
    files = cached_tree(cache)
    target = tmp_path / "run"
    target.mkdir()
    cache.map_tree(files, str(target), read_only=1)

    plain = os.stat(target / "d0" / "plain")
    assert plain.st_ino == os.stat(cache.path(files["d0/plain"].digest)).st_ino
    assert stat.S_IMODE(plain.st_mode) == 0o444
    exe = os.stat(target / "d0" / "f0000")
    assert stat.S_IMODE(exe.st_mode) == 0o555  # its mode is not the cache file's: a copy
    assert exe.st_ino != os.stat(cache.path(files["d0/f0000"].digest)).st_ino
    assert os.readlink(target / "link") == "d0/f0000"
    group_only = os.stat(target / "d1" / "f0001")  # m 0o640: read-only, a hardlink
    assert stat.S_IMODE(group_only.st_mode) == 0o444
    assert group_only.st_ino == os.stat(cache.path(files["d1/f0001"].digest)).st_ino
    with open(target / "d3" / "f0003", "rb") as f:
        assert f.read() == blob(3, 20)
    assert (cache.linked, cache.copied) == (991, 10)  # the 10 executables are copies
    assert stat.S_IMODE(os.stat(cache.path(files["d0/plain"].digest)).st_mode) == 0o444


def test_map_tree_read_only_0_gives_writable_copies(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock)
    data = b"data"
    digest = put(cache, data)
    target = tmp_path / "run"
    target.mkdir()
    files = {"a/f": FileEntry(digest=digest, size=4), "x": FileEntry(digest=digest, size=4, mode=0o750)}
    cache.map_tree(files, str(target), read_only=0)
    assert stat.S_IMODE(os.stat(target / "a" / "f").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(target / "x").st_mode) == 0o750
    assert (cache.linked, cache.copied) == (0, 2)
    assert os.stat(target / "a" / "f").st_ino != os.stat(cache.path(digest)).st_ino


def test_map_tree_read_only_2_makes_directories_read_only_and_remove_tree_deletes_them(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock)
    digest = put(cache, b"data")
    target = tmp_path / "run"
    target.mkdir()
    cache.map_tree({"a/b/f": FileEntry(digest=digest, size=4)}, str(target), read_only=2)
    for d in (target, target / "a", target / "a" / "b"):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o555
    remove_tree(str(target))
    assert not target.exists()
    assert cache.has(digest)


def test_map_tree_copies_when_a_link_fails_across_filesystems(tmp_path, clock):
    def link_across_filesystems(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link", src)

    cache = new_cache(tmp_path / "c", clock, link=link_across_filesystems)
    files = cached_tree(cache, n=100)
    target = tmp_path / "run"
    target.mkdir()
    cache.map_tree(files, str(target), read_only=1)
    assert (cache.linked, cache.copied) == (0, 101)
    plain = os.stat(target / "d0" / "plain")
    assert stat.S_IMODE(plain.st_mode) == 0o444
    assert plain.st_ino != os.stat(cache.path(files["d0/plain"].digest)).st_ino
    with open(target / "d0" / "plain", "rb") as f:
        assert f.read() == blob(0, 20)


def test_map_tree_refuses_a_path_through_a_symlink(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock)
    digest = put(cache, b"evil")
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "run"
    target.mkdir()
    files = {"a": FileEntry(link=str(outside)), "a/x": FileEntry(digest=digest, size=4)}
    with pytest.raises(MappingError, match="is a symlink, not a directory"):
        cache.map_tree(files, str(target))
    assert os.listdir(outside) == []


def test_map_tree_protects_its_items_from_eviction(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock, CachePolicies(max_items=2, min_free_space=0))
    a = put(cache, b"a", clock)
    during = []

    def link_while_others_are_written(src, dst):
        os.link(src, dst)
        during.append(put(cache, b"b", clock))
        during.append(put(cache, b"c", clock))  # evicts b, not the older a being mapped

    cache._link = link_while_others_are_written
    target = tmp_path / "run"
    target.mkdir()
    cache.map_tree({"f": FileEntry(digest=a, size=1)}, str(target))
    assert cache.evicted == [during[0]]
    assert cache.digests() == [a, during[1]]


def test_writes_from_several_threads_keep_the_state_consistent(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock, CachePolicies(max_items=100, min_free_space=0))
    datas = [blob(i) for i in range(400)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda d: cache.write(sha1(d), [d], size=len(d)), datas))
    on_disk = sorted(n for n in os.listdir(tmp_path / "c"))
    assert on_disk == sorted(cache.digests())
    assert len(cache) == 100
    assert cache.total_size == sum(os.path.getsize(cache.path(d)) for d in cache.digests())


@pytest.mark.parametrize("bad", [{"max_items": -1}, {"max_cache_size": "1G"}, {"min_free_space": True}])
def test_policies_refuse_bad_values(bad):
    with pytest.raises(ValueError, match="cache policy"):
        CachePolicies(**bad)


def test_map_tree_refuses_a_file_used_as_a_directory_or_a_path_mapped_twice(tmp_path, clock):
    cache = new_cache(tmp_path / "c", clock)
    digest = put(cache, b"data")
    entry = FileEntry(digest=digest, size=4)
    (tmp_path / "one").mkdir()
    with pytest.raises(MappingError, match="is a file, not a directory"):
        cache.map_tree({"a": entry, "a/b": entry}, str(tmp_path / "one"))
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "f").write_bytes(b"already here")
    with pytest.raises(MappingError, match="already exists"):
        cache.map_tree({"f": entry}, str(tmp_path / "two"))
