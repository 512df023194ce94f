"""Building an .isolated from a real directory tree, and the stat -> digest cache."""

import hashlib
import os
import subprocess
import sys

import pytest

from buildfarm.common.isolated import FileEntry, hash_of, parse, serialise
from buildfarm.common.isolated_tree import DigestCache, build_isolated, isolated_mode

TREE_FILES = 1000


def make_tree(root, files=TREE_FILES):
    """``files`` small files in 20 directories, every 10th executable, plus two symlinks."""
    for i in range(files):
        d = os.path.join(root, f"d{i % 20:02d}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"f{i:04d}.txt")
        with open(path, "wb") as f:
            f.write(b"content %d\n" % (i % 300))  # shared content: digests repeat
        os.chmod(path, 0o755 if i % 10 == 0 else 0o644)
    os.symlink("d00/f0000.txt", os.path.join(root, "link-to-file"))
    os.symlink("d01", os.path.join(root, "link-to-dir"))


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    root.mkdir()
    make_tree(str(root))
    return str(root)


def test_a_tree_of_1000_files_with_symlinks_and_modes(tree):
    built = build_isolated(tree)
    files = built.isolated.files
    assert len(files) == TREE_FILES + 2
    assert files["link-to-file"] == FileEntry(link="d00/f0000.txt")
    assert files["link-to-dir"] == FileEntry(link="d01")
    assert files["d00/f0000.txt"] == FileEntry(digest=hashlib.sha1(b"content 0\n").hexdigest(),
                                              size=10, mode=0o750)
    assert files["d01/f0001.txt"].mode == 0o640
    assert len(built.sources) == 300  # one local path per distinct content
    assert parse(serialise(built.isolated)) == built.isolated


def test_blacklist_leaves_out_matching_files_and_directories(tree):
    built = build_isolated(tree, blacklist=r"(^d0[0-4]/|\.pyc$|^link-to-dir$)")
    assert not any(p.startswith(("d00/", "d04/")) for p in built.isolated.files)
    assert "link-to-dir" not in built.isolated.files
    assert "d05/f0005.txt" in built.isolated.files


def test_unchanged_tree_is_not_hashed_again(tree, tmp_path):
    state = str(tmp_path / "digests.json")
    cache = DigestCache(algo="sha-1")
    first = build_isolated(tree, cache=cache)
    assert cache.hashed == TREE_FILES
    cache.save(state, keep=first.seen_keys)

    reloaded = DigestCache.load(state, "sha-1")
    second = build_isolated(tree, cache=reloaded)
    assert (reloaded.hashed, reloaded.hits) == (0, TREE_FILES)
    assert hash_of(second.isolated) == hash_of(first.isolated)


def test_a_changed_file_is_hashed_again(tree):
    cache = DigestCache(algo="sha-1")
    build_isolated(tree, cache=cache)
    path = os.path.join(tree, "d03", "f0003.txt")
    with open(path, "wb") as f:
        f.write(b"new content, new size\n")
    again = DigestCache(algo="sha-1", entries=dict(cache.entries))
    built = build_isolated(tree, cache=again)
    assert again.hashed == 1
    new_digest = hashlib.sha1(b"new content, new size\n").hexdigest()
    assert built.isolated.files["d03/f0003.txt"].digest == new_digest


def test_a_foreign_or_corrupt_digest_cache_is_ignored(tmp_path):
    path = tmp_path / "digests.json"
    path.write_text("{not json")
    assert DigestCache.load(str(path), "sha-1").entries == {}
    DigestCache(algo="sha-1", entries={"1:2:3:4": "a" * 40}).save(str(path))
    assert DigestCache.load(str(path), "sha-256").entries == {}
    assert DigestCache.load(str(path), "sha-1").entries == {"1:2:3:4": "a" * 40}
    assert [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")] == []


def test_canonical_hash_is_stable_across_processes(tree):
    script = ("import sys; from buildfarm.common.isolated import hash_of;"
              "from buildfarm.common.isolated_tree import build_isolated;"
              "print(hash_of(build_isolated(sys.argv[1]).isolated))")
    hashes = {subprocess.run([sys.executable, "-c", script, tree], check=True, capture_output=True,
                             text=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
              for seed in ("1", "2")}
    assert hashes == {hash_of(build_isolated(tree).isolated)}


@pytest.mark.parametrize("mode,expected", [
    (0o100755, 0o750),  # other bits dropped, group x kept with user x and group r
    (0o100644, 0o640),
    (0o100775, 0o750),  # group write dropped
    (0o100700, 0o700),  # no group r: no group x
    (0o100714, 0o700),
    (0o100744, 0o750),  # group x added when user x and group r
])
def test_isolated_mode(mode, expected):
    assert isolated_mode(mode) == expected


def test_a_bad_blacklist_is_a_clear_error(tree):
    with pytest.raises(ValueError, match="blacklist '\\(' is not a regular expression"):
        build_isolated(tree, blacklist="(")


def test_an_unchanged_digest_cache_is_not_rewritten(tree, tmp_path):
    state = str(tmp_path / "digests.json")
    cache = DigestCache(algo="sha-1")
    cache.save(state, keep=build_isolated(tree, cache=cache).seen_keys)
    before = os.stat(state)
    reloaded = DigestCache.load(state, "sha-1")
    reloaded.save(state, keep=build_isolated(tree, cache=reloaded).seen_keys)
    assert os.stat(state).st_ino == before.st_ino  # written atomically: a rewrite is a new inode

    os.remove(os.path.join(tree, "d00", "f0000.txt"))  # one file fewer: the cache shrinks
    again = DigestCache.load(state, "sha-1")
    again.save(state, keep=build_isolated(tree, cache=again).seen_keys)
    assert len(DigestCache.load(state, "sha-1").entries) == TREE_FILES - 1
