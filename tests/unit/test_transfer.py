"""The master's ends of file transfers: atomic uploads, size limits, safe archives."""

import io
import os
import tarfile

import pytest
import pytest_twisted
from twisted.internet import defer

from buildfarm.master.pb.transfer import (
    WRITE_AHEAD_BYTES,
    DirectoryWriter,
    FileReader,
    FileWriter,
    TransferError,
)
from buildfarm.master.process.steps.transfer import version_at_least


def tar_bytes(build, compress=None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:" + (compress or "")) as tar:
        build(tar)
    return buffer.getvalue()


def add_file(tar, name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_link(tar, name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


async def upload(writer, data: bytes, blocksize: int = 7):
    for start in range(0, len(data), blocksize):
        await writer.remote_write(data[start:start + blocksize])


@pytest_twisted.ensureDeferred
async def test_upload_lands_only_on_close_and_atomically(tmp_path):
    dest = tmp_path / "out" / "file.bin"
    writer = FileWriter(str(dest), mode=0o640)
    await upload(writer, b"0123456789" * 10)
    assert not dest.exists()
    writer.remote_utime((1000.0, 2000.0))
    await writer.remote_close()
    assert dest.read_bytes() == b"0123456789" * 10
    assert oct(dest.stat().st_mode & 0o777) == "0o640"
    assert dest.stat().st_mtime == 2000.0
    assert os.listdir(dest.parent) == ["file.bin"]


@pytest_twisted.ensureDeferred
async def test_overlapping_writes_land_in_call_order_and_close_waits_for_them(tmp_path):
    # Our slave keeps several writes in flight: the writer must not let the thread pool
    # reorder them, and close must come after the last one.
    dest = tmp_path / "file.bin"
    writer = FileWriter(str(dest))
    blocks = [bytes([i]) * (64 * 1024 + i) for i in range(40)]
    calls = [writer.remote_write(block) for block in blocks]
    calls.append(writer.remote_close())
    calls.append(writer.remote_utime((1000.0, 4000.0)))
    await defer.gatherResults(calls, consumeErrors=True)
    assert dest.read_bytes() == b"".join(blocks)
    assert dest.stat().st_mtime == 4000.0


@pytest_twisted.ensureDeferred
async def test_writes_are_answered_before_the_disk_has_them_up_to_the_write_ahead(tmp_path):
    dest = tmp_path / "file.bin"
    writer = FileWriter(str(dest))
    block = 1024 * 1024
    blocks = [bytes([i]) * block for i in range(WRITE_AHEAD_BYTES // block + 4)]
    calls = [writer.remote_write(data) for data in blocks]
    ahead = WRITE_AHEAD_BYTES // block
    assert all(call.called for call in calls[:ahead])  # answered at once: the slave sends on
    assert not any(call.called for call in calls[ahead:])  # held until the disk catches up
    await defer.gatherResults(calls, consumeErrors=True)
    await writer.remote_close()
    assert dest.read_bytes() == b"".join(blocks)


@pytest_twisted.ensureDeferred
async def test_a_failed_disk_write_fails_the_next_write_and_the_close(tmp_path):
    (tmp_path / "plain-file").write_bytes(b"")
    writer = FileWriter(str(tmp_path / "plain-file" / "dest.bin"))  # its directory cannot exist
    await writer.remote_write(b"accepted before the disk tried")
    await writer._queue.run(lambda: None)  # after the disk thread's attempt
    with pytest.raises(TransferError, match="dest.bin"):
        await writer.remote_write(b"more")
    with pytest.raises(TransferError, match="dest.bin"):
        await writer.remote_close()
    assert os.listdir(tmp_path) == ["plain-file"]


@pytest_twisted.ensureDeferred
async def test_cancel_waits_for_queued_writes_and_leaves_nothing(tmp_path):
    dest = tmp_path / "file.bin"
    writer = FileWriter(str(dest))
    calls = [writer.remote_write(b"x" * 100_000) for _ in range(8)]
    await writer.cancel()
    await defer.gatherResults(calls, consumeErrors=True)
    assert os.listdir(tmp_path) == []


@pytest_twisted.ensureDeferred
async def test_utime_after_close_still_applies(tmp_path):
    dest = tmp_path / "file.bin"
    writer = FileWriter(str(dest))
    await upload(writer, b"data")
    await writer.remote_close()
    await writer.remote_utime((1000.0, 3000.0))
    assert dest.stat().st_mtime == 3000.0


@pytest_twisted.ensureDeferred
async def test_upload_past_maxsize_is_truncated_and_flagged(tmp_path):
    writer = FileWriter(str(tmp_path / "f"), maxsize=10)
    await upload(writer, b"a" * 25)
    await writer.remote_close()  # the writes are answered before the disk has them
    assert writer.truncated and writer.received == 10
    assert (tmp_path / "f").read_bytes() == b"a" * 10


@pytest_twisted.ensureDeferred
async def test_cancelled_upload_leaves_nothing_behind(tmp_path):
    writer = FileWriter(str(tmp_path / "f"))
    await upload(writer, b"partial")
    await writer.cancel()
    assert os.listdir(tmp_path) == []


@pytest_twisted.ensureDeferred
async def test_empty_upload_makes_an_empty_file(tmp_path):
    writer = FileWriter(str(tmp_path / "empty"))
    await writer.remote_close()
    assert (tmp_path / "empty").read_bytes() == b""


@pytest.mark.parametrize("compress", [None, "gz", "bz2"])
@pytest_twisted.ensureDeferred
async def test_directory_upload_is_extracted(tmp_path, compress):
    data = tar_bytes(lambda t: (add_file(t, "a.txt", b"a"), add_file(t, "sub/b.txt", b"b")), compress)
    writer = DirectoryWriter(str(tmp_path / "dest"), compress=compress)
    await upload(writer, data, 100)
    await writer.remote_unpack()
    await writer.remote_close()
    assert (tmp_path / "dest" / "sub" / "b.txt").read_bytes() == b"b"
    assert sorted(os.listdir(tmp_path / "dest")) == ["a.txt", "sub"]


@pytest.mark.parametrize("hostile", [
    lambda t: add_file(t, "../escaped.txt"),
    lambda t: add_file(t, "/tmp/absolute-escape.txt"),
    lambda t: add_link(t, "link", "../../outside"),
    lambda t: add_link(t, "abs-link", "/etc/passwd"),
    lambda t: add_link(t, "hard", "../../outside", tarfile.LNKTYPE),
], ids=["dotdot", "absolute", "symlink-out", "absolute-symlink", "hardlink-out"])
@pytest_twisted.ensureDeferred
async def test_hostile_archive_is_refused_whole_and_writes_nothing(tmp_path, hostile):
    data = tar_bytes(lambda t: (add_file(t, "innocent.txt"), hostile(t)))
    dest = tmp_path / "dest"
    writer = DirectoryWriter(str(dest))
    await upload(writer, data, 512)
    with pytest.raises(TransferError, match="unsafe archive member"):
        await writer.remote_unpack()
    assert not (dest / "innocent.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    assert list(dest.iterdir()) == []


@pytest_twisted.ensureDeferred
async def test_corrupt_archive_is_a_clear_error(tmp_path):
    writer = DirectoryWriter(str(tmp_path / "dest"), compress="gz")
    await upload(writer, b"not a tar at all", 100)
    with pytest.raises(TransferError, match="bad archive"):
        await writer.remote_unpack()


@pytest_twisted.ensureDeferred
async def test_reader_serves_blocks_until_empty(tmp_path):
    source = tmp_path / "src"
    source.write_bytes(b"abcdefghij")
    reader = FileReader(str(source))
    await reader.open()
    blocks = [await reader.remote_read(4) for _ in range(4)]
    await reader.remote_close()
    assert blocks == [b"abcd", b"efgh", b"ij", b""]


@pytest_twisted.ensureDeferred
async def test_overlapping_reads_are_answered_in_call_order_and_close_comes_last(tmp_path):
    data = os.urandom(40 * 65536 + 123)
    source = tmp_path / "src"
    source.write_bytes(data)
    reader = FileReader(str(source))
    await reader.open()
    reads = [reader.remote_read(65536) for _ in range(45)]  # past the end: b""
    closing = reader.remote_close()
    blocks = await defer.gatherResults(reads, consumeErrors=True)
    await closing
    assert b"".join(blocks) == data and blocks[-1] == b""


def test_command_versions_compare_numerically():
    assert version_at_least("3.3", "3.0")
    assert version_at_least("10.0", "3.0")
    assert not version_at_least("2.16", "3.0")
    assert not version_at_least(None, "3.0")
