"""The file transfer commands with real files: uploadFile, uploadDirectory, downloadFile
against in-memory stand-ins of the master's FileWriter, DirectoryWriter and FileReader."""

import io
import os
import stat
import tarfile
import threading

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from buildfarm.slave.commands import transfer
from buildfarm.slave.commands.base import CommandError
from buildfarm.slave.commands.transfer import (
    MAX_BLOCKSIZE,
    DownloadFile,
    UploadDirectory,
    UploadFile,
)
from fixtures.slavecommand import CommandRun

PAYLOAD = bytes(range(256)) * 1000  # 256000 bytes


class Writer:
    """The master's FileWriter/DirectoryWriter: records calls and the bytes written."""

    def __init__(self):
        self.calls = []
        self.data = b""
        self.blocks = []

    def callRemote(self, name, *args):  # noqa: N802 - the PB name
        self.calls.append((name, *args))
        if name == "write":
            self.blocks.append(len(args[0]))
            self.data += args[0]
        return defer.succeed(None)

    def names(self):
        return [name for name, *_ in self.calls]


class Reader:
    """The master's FileReader over some bytes."""

    def __init__(self, data):
        self.source = io.BytesIO(data)
        self.calls = []

    def callRemote(self, name, *args):  # noqa: N802 - the PB name
        self.calls.append((name, *args))
        if name == "read":
            return defer.succeed(self.source.read(args[0]))
        return defer.succeed(None)

    def names(self):
        return [name for name, *_ in self.calls]


def uploadArgs(writer, **overrides):
    args = {"workdir": "build", "workersrc": "data.bin", "writer": writer, "maxsize": None,
            "blocksize": 16 * 1024, "keepstamp": False}
    args.update(overrides)
    return args


@pytest.fixture
def workdir(tmp_path):
    path = tmp_path / "builder" / "build"
    path.mkdir(parents=True)
    return path


# uploadFile


@pytest_twisted.ensureDeferred
async def test_upload_sends_the_file_in_blocks_then_closes(tmp_path, workdir):
    (workdir / "data.bin").write_bytes(PAYLOAD)
    writer = Writer()

    run = await CommandRun(tmp_path, UploadFile, **uploadArgs(writer)).run()

    assert writer.data == PAYLOAD
    assert max(writer.blocks) == 16 * 1024
    assert writer.names()[-1] == "close" and "utime" not in writer.names()
    assert f"sending {workdir / 'data.bin'}" in run.text("header")
    assert run.rc == 0


class SlowWriter(Writer):
    """A writer whose replies come only when the test releases them."""

    def __init__(self):
        super().__init__()
        self.pending = []
        self.mostInFlight = 0

    def callRemote(self, name, *args):  # noqa: N802 - the PB name
        super().callRemote(name, *args)
        reply = defer.Deferred()
        self.pending.append(reply)
        self.mostInFlight = max(self.mostInFlight, len(self.pending))
        return reply

    def answerOldest(self, failure=None):
        reply = self.pending.pop(0)
        if failure is None:
            reply.callback(None)
        else:
            reply.errback(failure)


async def untilCalls(writer, count):
    """Let the command's thread reads finish until ``writer`` has ``count`` calls outstanding."""
    for _ in range(1000):
        if len(writer.pending) >= count:
            return
        await task.deferLater(reactor, 0.001, lambda: None)
    raise AssertionError(f"only {len(writer.pending)} calls in flight, wanted {count}")


@pytest_twisted.ensureDeferred
async def test_upload_keeps_a_window_of_writes_in_flight(tmp_path, workdir):
    (workdir / "data.bin").write_bytes(PAYLOAD)  # 16 blocks of 16 KiB (the last one short)
    writer = SlowWriter()
    done = defer.ensureDeferred(CommandRun(tmp_path, UploadFile, **uploadArgs(writer)).run())

    await untilCalls(writer, transfer.WRITE_WINDOW)
    assert writer.names() == ["write"] * transfer.WRITE_WINDOW  # no more until one is answered
    while not done.called:
        await untilCalls(writer, 1)
        writer.answerOldest()
    run = await done

    assert writer.mostInFlight == transfer.WRITE_WINDOW
    assert writer.data == PAYLOAD and writer.names()[-1] == "close"
    assert run.rc == 0


@pytest_twisted.ensureDeferred
async def test_failed_write_waits_for_the_others_and_fails_the_command(tmp_path, workdir):
    (workdir / "data.bin").write_bytes(PAYLOAD)
    writer = SlowWriter()
    done = defer.ensureDeferred(CommandRun(tmp_path, UploadFile, **uploadArgs(writer)).run())

    await untilCalls(writer, transfer.WRITE_WINDOW)
    writer.answerOldest(RuntimeError("disk full"))
    assert not done.called  # the other writes in flight are still awaited
    while writer.pending:
        writer.answerOldest(RuntimeError("after the first failure"))
    with pytest.raises(RuntimeError, match="disk full"):
        await done
    assert "close" not in writer.names()


@pytest_twisted.ensureDeferred
async def test_keepstamp_sends_utime_after_close(tmp_path, workdir):
    source = workdir / "data.bin"
    source.write_bytes(b"x")
    os.utime(source, (1000000000, 1100000000))
    writer = Writer()

    await CommandRun(tmp_path, UploadFile, **uploadArgs(writer, keepstamp=True)).run()

    assert writer.names()[-2:] == ["close", "utime"]
    assert writer.calls[-1][1] == (1000000000, 1100000000)


@pytest_twisted.ensureDeferred
async def test_upload_over_maxsize_sends_maxsize_bytes_and_fails(tmp_path, workdir):
    (workdir / "data.bin").write_bytes(PAYLOAD)
    writer = Writer()

    run = await CommandRun(tmp_path, UploadFile, **uploadArgs(writer, maxsize=1000)).run()

    assert writer.data == PAYLOAD[:1000]
    assert "Maximum filesize reached" in run.text("stderr")
    assert run.rc == 1


@pytest_twisted.ensureDeferred
async def test_upload_of_exactly_maxsize_succeeds(tmp_path, workdir):
    (workdir / "data.bin").write_bytes(PAYLOAD)
    writer = Writer()

    run = await CommandRun(tmp_path, UploadFile, **uploadArgs(writer, maxsize=len(PAYLOAD))).run()

    assert writer.data == PAYLOAD and run.rc == 0


@pytest_twisted.ensureDeferred
async def test_missing_file_fails_with_rc_1_and_nothing_sent(tmp_path, workdir):
    writer = Writer()

    run = await CommandRun(tmp_path, UploadFile, **uploadArgs(writer, workersrc="nope")).run()

    assert f"Cannot open file '{workdir / 'nope'}' for upload" in run.text("stderr")
    assert run.rc == 1 and writer.calls == []


@pytest_twisted.ensureDeferred
async def test_old_argument_name_slavesrc_is_accepted(tmp_path, workdir):
    (workdir / "data.bin").write_bytes(b"old")
    writer = Writer()
    args = uploadArgs(writer)
    args["slavesrc"] = args.pop("workersrc")

    run = await CommandRun(tmp_path, UploadFile, **args).run()

    assert writer.data == b"old" and run.rc == 0


@pytest_twisted.ensureDeferred
async def test_huge_blocksize_is_capped_well_below_the_banana_limit(tmp_path, workdir):
    (workdir / "data.bin").write_bytes(PAYLOAD * 4)
    writer = Writer()

    await CommandRun(tmp_path, UploadFile, **uploadArgs(writer, blocksize=4 * 1024 * 1024)).run()

    assert max(writer.blocks) == MAX_BLOCKSIZE < 640 * 1024


@pytest_twisted.ensureDeferred
async def test_upload_source_outside_the_basedir_is_refused(tmp_path, workdir):
    run = CommandRun(tmp_path, UploadFile, **uploadArgs(Writer(), workersrc="../../../etc/passwd"))

    with pytest.raises(CommandError, match="workersrc '../../../etc/passwd' is outside"):
        await run.run()


@pytest.mark.parametrize("bad", [{"writer": "not a reference"}, {"blocksize": -1},
                                 {"maxsize": "big"}, {"workersrc": 7}])
def test_wrongly_typed_upload_arguments_are_refused(tmp_path, bad):
    with pytest.raises(CommandError, match=f"argument '{next(iter(bad))}'"):
        CommandRun(tmp_path, UploadFile, **{**uploadArgs(Writer()), **bad})


@pytest_twisted.ensureDeferred
async def test_interrupted_upload_stops_with_rc_1_without_closing(tmp_path, workdir):
    (workdir / "data.bin").write_bytes(PAYLOAD)
    writer = Writer()
    run = CommandRun(tmp_path, UploadFile, **uploadArgs(writer))
    original = writer.callRemote

    def interruptAfterFirstWrite(name, *args):
        run.command.interrupt("stop")
        return original(name, *args)

    writer.callRemote = interruptAfterFirstWrite
    await run.run()

    assert writer.names() == ["write"]
    assert run.rc == 1 and "interrupted" in run.text("stderr")


# uploadDirectory


def makeTree(workdir):
    (workdir / "out" / "sub").mkdir(parents=True)
    (workdir / "out" / "a.txt").write_text("alpha")
    (workdir / "out" / "sub" / "b.bin").write_bytes(PAYLOAD)


def unpacked(data, compress):
    mode = {None: "r", "gz": "r:gz", "bz2": "r:bz2"}[compress]
    with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as tar:
        return {m.name.lstrip("./"): tar.extractfile(m).read() for m in tar.getmembers()
                if m.isfile()}


@pytest.mark.parametrize("compress", [None, "gz", "bz2"])
@pytest_twisted.ensureDeferred
async def test_directory_upload_streams_a_tar_then_unpacks(tmp_path, workdir, compress):
    makeTree(workdir)
    writer = Writer()

    run = await CommandRun(tmp_path, UploadDirectory, **uploadArgs(
        writer, workersrc="out", compress=compress)).run()

    assert unpacked(writer.data, compress) == {"a.txt": b"alpha", "sub/b.bin": PAYLOAD}
    assert writer.names()[-1] == "unpack" and "close" not in writer.names()
    assert run.rc == 0


@pytest_twisted.ensureDeferred
async def test_tarball_is_built_off_the_reactor_thread(tmp_path, workdir, monkeypatch):
    makeTree(workdir)
    threadsUsed = []
    original = transfer._writeTarball

    def recording(*args):
        threadsUsed.append(threading.current_thread())
        return original(*args)

    monkeypatch.setattr(transfer, "_writeTarball", recording)
    await CommandRun(tmp_path, UploadDirectory, **uploadArgs(Writer(), workersrc="out",
                                                      compress="gz")).run()

    assert threadsUsed and threadsUsed[0] is not threading.main_thread()


@pytest_twisted.ensureDeferred
async def test_missing_directory_fails_with_rc_1(tmp_path, workdir):
    writer = Writer()

    run = await CommandRun(tmp_path, UploadDirectory, **uploadArgs(
        writer, workersrc="nope", compress=None)).run()

    assert f"Cannot read directory '{workdir / 'nope'}' for upload" in run.text("stderr")
    assert run.rc == 1 and writer.calls == []


@pytest_twisted.ensureDeferred
async def test_directory_over_maxsize_is_not_unpacked(tmp_path, workdir):
    makeTree(workdir)
    writer = Writer()

    run = await CommandRun(tmp_path, UploadDirectory, **uploadArgs(
        writer, workersrc="out", compress=None, maxsize=10000)).run()

    assert len(writer.data) == 10000 and "unpack" not in writer.names()
    assert "Maximum filesize reached" in run.text("stderr") and run.rc == 1


def test_unknown_compression_is_refused(tmp_path):
    with pytest.raises(CommandError, match="argument 'compress'"):
        CommandRun(tmp_path, UploadDirectory, **uploadArgs(Writer(), workersrc="out", compress="xz"))


# downloadFile


class SlowReader(Reader):
    """A reader whose answers come only when the test releases them (oldest first)."""

    def __init__(self, data):
        super().__init__(data)
        self.pending = []
        self.mostInFlight = 0

    def callRemote(self, name, *args):  # noqa: N802 - the PB name
        answer = super().callRemote(name, *args).result
        reply = defer.Deferred()
        self.pending.append((reply, answer))
        self.mostInFlight = max(self.mostInFlight, len(self.pending))
        return reply

    def answerOldest(self):
        reply, answer = self.pending.pop(0)
        reply.callback(answer)


async def downloadWithSlowReader(tmp_path, reader, **overrides):
    done = defer.ensureDeferred(CommandRun(tmp_path, DownloadFile, **downloadArgs(reader, **overrides)).run())
    while not done.called:
        await untilCalls(reader, 1)
        reader.answerOldest()
    return await done


@pytest_twisted.ensureDeferred
async def test_download_keeps_a_window_of_reads_in_flight(tmp_path, workdir):
    reader = SlowReader(PAYLOAD)
    run = await downloadWithSlowReader(tmp_path, reader)
    assert reader.mostInFlight == transfer.READ_WINDOW
    assert (workdir / "dl" / "file.bin").read_bytes() == PAYLOAD
    assert reader.names()[-1] == "close" and run.rc == 0


@pytest.mark.parametrize("maxsize, rc", [(len(PAYLOAD), 0), (len(PAYLOAD) - 1, 1), (40_000, 1)])
@pytest_twisted.ensureDeferred
async def test_windowed_download_respects_maxsize(tmp_path, workdir, maxsize, rc):
    reader = SlowReader(PAYLOAD)
    run = await downloadWithSlowReader(tmp_path, reader, maxsize=maxsize)
    assert run.rc == rc
    if rc == 0:
        assert (workdir / "dl" / "file.bin").read_bytes() == PAYLOAD
    asked = sum(args[0] for name, *args in reader.calls if name == "read")
    assert asked <= maxsize + 1  # never more than maxsize and the 1-byte probe


def downloadArgs(reader, **overrides):
    args = {"workdir": "build", "workerdest": "dl/file.bin", "reader": reader,
            "maxsize": None, "blocksize": 16 * 1024, "mode": None}
    args.update(overrides)
    return args


def leftovers(directory):
    return [name for name in os.listdir(directory) if name.endswith(".download")]


@pytest_twisted.ensureDeferred
async def test_download_reads_until_empty_then_closes(tmp_path, workdir):
    reader = Reader(PAYLOAD)

    run = await CommandRun(tmp_path, DownloadFile, **downloadArgs(reader)).run()

    assert (workdir / "dl" / "file.bin").read_bytes() == PAYLOAD
    assert reader.names()[-1] == "close"
    assert all(args[0] == 16 * 1024 for name, *args in reader.calls if name == "read")
    assert leftovers(workdir / "dl") == [] and run.rc == 0


@pytest_twisted.ensureDeferred
async def test_download_applies_the_mode(tmp_path, workdir):
    await CommandRun(tmp_path, DownloadFile, **downloadArgs(Reader(b"#!/bin/sh\n"), mode=0o750)).run()

    assert stat.S_IMODE((workdir / "dl" / "file.bin").stat().st_mode) == 0o750


@pytest_twisted.ensureDeferred
async def test_download_replaces_an_existing_file(tmp_path, workdir):
    (workdir / "dl").mkdir()
    (workdir / "dl" / "file.bin").write_bytes(b"old contents, longer than the new")

    await CommandRun(tmp_path, DownloadFile, **downloadArgs(Reader(b"new"))).run()

    assert (workdir / "dl" / "file.bin").read_bytes() == b"new"


@pytest_twisted.ensureDeferred
async def test_download_over_maxsize_is_truncated_and_fails(tmp_path, workdir):
    run = await CommandRun(tmp_path, DownloadFile, **downloadArgs(Reader(PAYLOAD), maxsize=1000)).run()

    assert (workdir / "dl" / "file.bin").read_bytes() == PAYLOAD[:1000]
    assert "Maximum filesize reached" in run.text("stderr") and run.rc == 1


@pytest_twisted.ensureDeferred
async def test_download_of_exactly_maxsize_succeeds(tmp_path, workdir):
    run = await CommandRun(tmp_path, DownloadFile, **downloadArgs(Reader(b"12345"), maxsize=5)).run()

    assert (workdir / "dl" / "file.bin").read_bytes() == b"12345" and run.rc == 0


@pytest_twisted.ensureDeferred
async def test_download_outside_the_basedir_is_refused_and_writes_nothing(tmp_path, workdir):
    reader = Reader(b"evil")
    run = CommandRun(tmp_path, DownloadFile, **downloadArgs(reader, workerdest="../../../evil"))

    with pytest.raises(CommandError, match="workerdest '../../../evil' is outside"):
        await run.run()
    assert not (tmp_path.parent / "evil").exists() and reader.calls == []


@pytest_twisted.ensureDeferred
async def test_download_through_a_symlinked_directory_out_of_the_basedir_is_refused(
        tmp_path, workdir):
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (workdir / "link").symlink_to(outside)
    run = CommandRun(tmp_path, DownloadFile, **downloadArgs(Reader(b"evil"), workerdest="link/x"))

    with pytest.raises(CommandError, match="leads outside the slave's basedir"):
        await run.run()
    assert list(outside.iterdir()) == []


@pytest_twisted.ensureDeferred
async def test_download_replaces_a_symlink_instead_of_writing_through_it(tmp_path, workdir):
    target = tmp_path.parent / f"{tmp_path.name}-target"
    target.write_bytes(b"precious")
    (workdir / "dl").mkdir()
    (workdir / "dl" / "file.bin").symlink_to(target)

    await CommandRun(tmp_path, DownloadFile, **downloadArgs(Reader(b"new"))).run()

    assert target.read_bytes() == b"precious"
    assert not (workdir / "dl" / "file.bin").is_symlink()
    assert (workdir / "dl" / "file.bin").read_bytes() == b"new"


@pytest_twisted.ensureDeferred
async def test_download_into_an_impossible_place_fails_with_rc_1_and_closes(tmp_path, workdir):
    (workdir / "afile").write_text("not a directory")
    reader = Reader(b"data")

    run = await CommandRun(tmp_path, DownloadFile, **downloadArgs(reader, workerdest="afile/x")).run()

    assert "Cannot open file" in run.text("stderr") and run.rc == 1
    assert reader.names() == ["close"]


@pytest_twisted.ensureDeferred
async def test_interrupted_download_leaves_no_file(tmp_path, workdir):
    reader = Reader(PAYLOAD)
    run = CommandRun(tmp_path, DownloadFile, **downloadArgs(reader))
    original = reader.callRemote

    def interruptOnFirstRead(name, *args):
        run.command.interrupt("stop")
        return original(name, *args)

    reader.callRemote = interruptOnFirstRead
    await run.run()

    assert not (workdir / "dl" / "file.bin").exists() and leftovers(workdir / "dl") == []
    assert run.rc == 1 and reader.names()[-1] == "close"


@pytest_twisted.ensureDeferred
async def test_old_argument_name_slavedest_is_accepted(tmp_path, workdir):
    args = downloadArgs(Reader(b"old"))
    args["slavedest"] = args.pop("workerdest")

    await CommandRun(tmp_path, DownloadFile, **args).run()

    assert (workdir / "dl" / "file.bin").read_bytes() == b"old"
