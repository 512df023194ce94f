"""The filesystem commands with real files: mkdir, rmdir, cpdir, stat, glob, listdir,
rmfile; errors as "<cmd>: <strerror>: <path>" headers with rc = errno."""

import errno
import os
import stat

import pytest
import pytest_twisted

from buildfarm.slave.commands.base import CommandError
from buildfarm.slave.commands.fs import (
    FS_PROCESS_TIMEOUT_S,
    CopyDirectory,
    GlobPath,
    ListDir,
    MakeDirectory,
    RemoveDirectory,
    RemoveFile,
    StatFile,
)
from fixtures.slavecommand import CommandRun


@pytest.fixture
def builder(tmp_path):
    path = tmp_path / "builder"
    path.mkdir()
    return path


async def run(tmp_path, commandClass, **args):
    return await CommandRun(tmp_path, commandClass, **args).run()


# mkdir


@pytest_twisted.ensureDeferred
async def test_mkdir_creates_nested_directories_relative_to_the_builder(tmp_path, builder):
    result = await run(tmp_path, MakeDirectory, dir="build/a/b")

    assert (builder / "build" / "a" / "b").is_dir() and result.rc == 0


@pytest_twisted.ensureDeferred
async def test_mkdir_takes_a_list_and_accepts_existing_directories(tmp_path, builder):
    (builder / "one").mkdir()

    result = await run(tmp_path, MakeDirectory, dir=["one", "two/three"])

    assert (builder / "two" / "three").is_dir() and result.rc == 0


@pytest_twisted.ensureDeferred
async def test_mkdir_over_a_file_reports_the_error_and_errno(tmp_path, builder):
    (builder / "taken").write_text("a file")

    result = await run(tmp_path, MakeDirectory, dir="taken")

    assert result.text("header") == f"mkdir: File exists: {builder / 'taken'}\n"
    assert result.rc == errno.EEXIST


def test_mkdir_outside_the_basedir_is_refused(tmp_path, builder):
    with pytest.raises(CommandError, match="mkdir: dir '../../x' is outside"):
        CommandRun(tmp_path, MakeDirectory, dir="../../x").command.resolvePath("../../x", "dir")


@pytest_twisted.ensureDeferred
async def test_mkdir_with_one_escaping_path_creates_none(tmp_path, builder):
    with pytest.raises(CommandError, match="outside the slave's basedir"):
        await run(tmp_path, MakeDirectory, dir=["fine", "../../escape"])

    assert not (builder / "fine").exists()


def test_mkdir_without_dir_is_refused():
    with pytest.raises(CommandError, match="missing required argument 'dir'"):
        MakeDirectory.parseArgs({})


def test_mkdir_with_a_wrongly_typed_dir_is_refused():
    with pytest.raises(CommandError, match="argument 'dir'"):
        MakeDirectory.parseArgs({"dir": 42})


# rmdir


@pytest_twisted.ensureDeferred
async def test_rmdir_removes_each_listed_tree(tmp_path, builder):
    for name in ("a", "b"):
        (builder / name / "deep").mkdir(parents=True)
        (builder / name / "deep" / "f").write_text("x")

    result = await run(tmp_path, RemoveDirectory, dir=["a", "b"])

    assert not (builder / "a").exists() and not (builder / "b").exists()
    assert result.rc == 0


@pytest_twisted.ensureDeferred
async def test_rmdir_removes_a_tree_with_unwritable_directories(tmp_path, builder):
    locked = builder / "build" / "locked"
    locked.mkdir(parents=True)
    (locked / "f").write_text("x")
    locked.chmod(0o500)
    (builder / "build").chmod(0o500)

    result = await run(tmp_path, RemoveDirectory, dir="build")

    assert not (builder / "build").exists() and result.rc == 0


@pytest_twisted.ensureDeferred
async def test_rmdir_of_a_missing_directory_succeeds(tmp_path, builder):
    assert (await run(tmp_path, RemoveDirectory, dir="never-there")).rc == 0


def test_rmdir_defaults_to_a_120_s_silence_timeout(tmp_path, builder):
    command = CommandRun(tmp_path, RemoveDirectory, dir="x").command

    assert command.args["timeout"] == FS_PROCESS_TIMEOUT_S and command.args["maxTime"] is None


@pytest_twisted.ensureDeferred
async def test_rmdir_outside_the_basedir_is_refused_and_removes_nothing(tmp_path, builder):
    victim = tmp_path.parent / f"{tmp_path.name}-victim"
    victim.mkdir()

    with pytest.raises(CommandError, match="outside the slave's basedir"):
        await run(tmp_path, RemoveDirectory, dir=f"../../{victim.name}")
    assert victim.is_dir()


# cpdir


@pytest_twisted.ensureDeferred
async def test_cpdir_copies_a_tree_keeping_symlinks_and_modes(tmp_path, builder):
    source = builder / "build" / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "tool").write_text("#!/bin/sh\n")
    (source / "sub" / "tool").chmod(0o751)
    (source / "link").symlink_to("sub/tool")

    result = await run(tmp_path, CopyDirectory, fromdir="build/src", todir="backup/copy")

    copy = builder / "backup" / "copy"
    assert (copy / "sub" / "tool").read_text() == "#!/bin/sh\n"
    assert stat.S_IMODE((copy / "sub" / "tool").stat().st_mode) == 0o751
    assert os.readlink(copy / "link") == "sub/tool"
    assert result.rc == 0


@pytest_twisted.ensureDeferred
async def test_cpdir_of_a_missing_source_reports_enoent(tmp_path, builder):
    result = await run(tmp_path, CopyDirectory, fromdir="nope", todir="copy")

    assert result.text("header") == f"cpdir: No such file or directory: {builder / 'nope'}\n"
    assert result.rc == errno.ENOENT


def test_cpdir_without_todir_is_refused():
    with pytest.raises(CommandError, match="missing required argument 'todir'"):
        CopyDirectory.parseArgs({"fromdir": "a"})


# stat


@pytest_twisted.ensureDeferred
async def test_stat_sends_the_os_stat_tuple_of_a_file_in_the_workdir(tmp_path, builder):
    (builder / "build").mkdir()
    (builder / "build" / "f").write_bytes(b"12345")

    result = await run(tmp_path, StatFile, file="f", workdir="build")

    stats = result.value("stat")
    assert isinstance(stats, tuple) and len(stats) == 10
    assert stats[stat.ST_SIZE] == 5 and stat.S_ISREG(stats[stat.ST_MODE])
    assert result.rc == 0


@pytest_twisted.ensureDeferred
async def test_stat_without_workdir_is_relative_to_the_builder(tmp_path, builder):
    (builder / "d").mkdir()

    result = await run(tmp_path, StatFile, file="d")

    assert stat.S_ISDIR(result.value("stat")[stat.ST_MODE])


@pytest_twisted.ensureDeferred
async def test_stat_of_a_missing_file_reports_enoent(tmp_path, builder):
    result = await run(tmp_path, StatFile, file="missing")

    assert result.text("header") == f"stat: No such file or directory: {builder / 'missing'}\n"
    assert result.rc == errno.ENOENT and "stat" not in result.updates[0]


# glob, listdir


@pytest_twisted.ensureDeferred
async def test_glob_sends_absolute_matches_recursively(tmp_path, builder):
    (builder / "build" / "a" / "b").mkdir(parents=True)
    for name in ("x.txt", "a/y.txt", "a/b/z.txt", "a/b/skip.bin"):
        (builder / "build" / name).write_text("")

    result = await run(tmp_path, GlobPath, path="build/**/*.txt")

    assert result.value("files") == sorted(
        str(builder / "build" / n) for n in ("x.txt", "a/y.txt", "a/b/z.txt"))
    assert result.rc == 0


@pytest_twisted.ensureDeferred
async def test_glob_without_matches_sends_an_empty_list(tmp_path, builder):
    result = await run(tmp_path, GlobPath, path="nothing*")

    assert result.value("files") == [] and result.rc == 0


@pytest_twisted.ensureDeferred
async def test_glob_pattern_escaping_the_basedir_is_refused(tmp_path, builder):
    with pytest.raises(CommandError, match="outside the slave's basedir"):
        await run(tmp_path, GlobPath, path="../../../*")


@pytest_twisted.ensureDeferred
async def test_listdir_sends_the_sorted_names(tmp_path, builder):
    (builder / "build").mkdir()
    for name in ("b", "a", "c"):
        (builder / "build" / name).write_text("")

    result = await run(tmp_path, ListDir, dir="build")

    assert result.value("files") == ["a", "b", "c"] and result.rc == 0


@pytest_twisted.ensureDeferred
async def test_listdir_of_a_missing_directory_reports_enoent(tmp_path, builder):
    result = await run(tmp_path, ListDir, dir="nope")

    assert result.text("header") == f"listdir: No such file or directory: {builder / 'nope'}\n"
    assert result.rc == errno.ENOENT


# rmfile


@pytest_twisted.ensureDeferred
async def test_rmfile_removes_the_file(tmp_path, builder):
    (builder / "f").write_text("x")

    result = await run(tmp_path, RemoveFile, path="f")

    assert not (builder / "f").exists() and result.rc == 0


@pytest_twisted.ensureDeferred
async def test_rmfile_of_a_directory_reports_the_error(tmp_path, builder):
    (builder / "d").mkdir()

    result = await run(tmp_path, RemoveFile, path="d")

    assert result.text("header").startswith("rmfile: ")
    assert result.rc in (errno.EISDIR, errno.EPERM)
