"""A buildfarm ``buildslave`` (created and started with our CLI) runs the builds of a STOCK
Buildbot 4.3 master: every worker command its standard steps send, with the bytes moved
checked on disk, properties read back through the REST API, and a build stopped through the
API ending CANCELLED with its process killed."""

import os
import stat

import pytest

from fixtures.daemons import Fleet, pid_alive, wait_for
from fixtures.stock_buildbot import (
    CANCELLED,
    CONFIG_PREAMBLE,
    FAILURE,
    SUCCESS,
    StockMasters,
)

WORKER = "bf1"
BIG_FILE_BYTES = 700 * 1024  # several blocks, more than Banana's limit in total
DOWNLOAD_BYTES = 300 * 1024
STRING_DOWNLOAD = "a string from the master\n"

BUILDERS = """
c['workers'] = [worker.Worker({worker!r}, 'pass')]

# every step runs, so each one's own result is visible
lenient = dict(haltOnFailure=False, flunkOnFailure=True)

f = util.BuildFactory([
    steps.ShellCommand(name='make-files', command=[
        'sh', '-c', 'mkdir -p out/sub && printf payload > out/a.txt && '
        'printf nested > out/sub/b.txt && head -c {big} /dev/urandom > big.bin && '
        'touch -d "2001-02-03 04:05:06" big.bin && echo made > app.log.old'], **lenient),
    steps.FileUpload(name='file-upload', workersrc='big.bin',
                             masterdest={updir!r} + '/big.bin', keepstamp=True,
                             blocksize=64 * 1024, **lenient),
    steps.DirectoryUpload(name='directory-upload-gz', workersrc='out',
                                  masterdest={updir!r} + '/out-gz', compress='gz', **lenient),
    steps.DirectoryUpload(name='directory-upload', workersrc='out',
                                  masterdest={updir!r} + '/out-plain', **lenient),
    steps.MultipleFileUpload(name='multiple-file-upload', workersrcs=['out/*.txt'],
                                     glob=True, masterdest={updir!r} + '/multi', **lenient),
    steps.FileDownload(name='file-download', mastersrc={download!r},
                               workerdest='dl/from-master.bin', mode=0o750, **lenient),
    steps.StringDownload({string!r}, name='string-download',
                                 workerdest='dl/string.txt', **lenient),
    steps.FileExists(name='file-exists', file='build/dl/string.txt', **lenient),
    steps.MakeDirectory(name='make-directory', dir='build/made/deep', **lenient),
    steps.CopyDirectory(name='copy-directory', src='build/out', dest='build/copied', **lenient),
    steps.RemoveDirectory(name='remove-directory', dir='build/made', **lenient),
    steps.SetPropertyFromCommand(name='set-property', command='echo propvalue',
                                         property='myprop', **lenient),
    steps.ShellCommand(name='watched-logfile', command='echo watched-line > app.log',
                               logfiles={{'app': 'app.log'}}, **lenient),
])

failing = util.BuildFactory([
    steps.ShellCommand(name='exit-3', command=['sh', '-c', 'exit 3'], **lenient),
    steps.FileUpload(name='upload-missing', workersrc='no-such-file',
                             masterdest={updir!r} + '/never', **lenient),
    steps.DirectoryUpload(name='directory-upload-missing', workersrc='no-such-dir',
                                  masterdest={updir!r} + '/never-dir', **lenient),
    steps.ShellCommand(name='make-big', command=['sh', '-c', 'head -c 5000 /dev/zero > f'], **lenient),
    steps.FileUpload(name='upload-over-maxsize', workersrc='f', maxsize=1000,
                             masterdest={updir!r} + '/truncated', **lenient),
])

stoppable = util.BuildFactory([
    steps.ShellCommand(name='sleeper', command=['sh', '-c', 'echo $$ > sleeper.pid; exec sleep 120']),
])

c['builders'] = [
    util.BuilderConfig(name='steps', workernames=[{worker!r}], factory=f),
    util.BuilderConfig(name='failing', workernames=[{worker!r}], factory=failing),
    util.BuilderConfig(name='stoppable', workernames=[{worker!r}], factory=stoppable),
]
c['schedulers'] = [schedulers.ForceScheduler(name='force',
                                             builderNames=['steps', 'failing', 'stoppable'])]
"""

STEP_NAMES = [
    "make-files", "file-upload", "directory-upload-gz", "directory-upload",
    "multiple-file-upload", "file-download", "string-download", "file-exists",
    "make-directory", "copy-directory", "remove-directory", "set-property", "watched-logfile",
]
FAILING_STEPS = ["exit-3", "upload-missing", "directory-upload-missing", "upload-over-maxsize"]


class Setup:
    """A stock master and our slave attached to it, shared by this module's tests."""

    def __init__(self, root):
        self.root = root
        self.updir = os.path.join(root, "uploads")
        self.download = os.path.join(root, "download.bin")
        with open(self.download, "wb") as f:
            f.write(os.urandom(DOWNLOAD_BYTES))
        config = CONFIG_PREAMBLE + BUILDERS.format(
            worker=WORKER, updir=self.updir, download=self.download, string=STRING_DOWNLOAD,
            big=BIG_FILE_BYTES)
        self.masters = StockMasters(os.path.join(root, "masters"))
        self.fleet = Fleet(os.path.join(root, "slaves"))
        os.makedirs(self.fleet.root)
        self.master = self.masters.start(config)
        self.slave = self.fleet.slave(self.master, WORKER, "pass")
        self.master.wait_worker_connected(WORKER)
        self._builds = {}

    def build(self, builder):
        """The finished build of ``builder`` (forced once, on first use)."""
        if builder not in self._builds:
            self._builds[builder] = self.master.wait_build_finished(
                self.master.force("force", builder))
        return self._builds[builder]

    def step(self, builder, name):
        steps = self.master.steps(self.build(builder)["buildid"])
        return next(s for s in steps if s["name"] == name)

    def workerPath(self, builder, *parts):
        return os.path.join(self.slave.basedir, builder, "build", *parts)

    def stop(self):
        self.fleet.stop_all()
        self.masters.stop_all()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    started = Setup(str(tmp_path_factory.mktemp("interop")))
    yield started
    started.stop()


def read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("name", STEP_NAMES)
def test_step_passes_against_the_stock_master(setup, name):
    step = setup.step("steps", name)

    assert step["results"] == SUCCESS, f"{name}: {step['state_string']}"


def test_the_whole_build_succeeds(setup):
    assert setup.build("steps")["results"] == SUCCESS


def test_uploaded_file_has_the_workers_bytes_and_timestamp(setup):
    setup.build("steps")
    source = setup.workerPath("steps", "big.bin")

    uploaded = os.path.join(setup.updir, "big.bin")
    assert read(uploaded) == read(source) and len(read(source)) == BIG_FILE_BYTES
    assert int(os.stat(uploaded).st_mtime) == int(os.stat(source).st_mtime)


@pytest.mark.parametrize("dest", ["out-gz", "out-plain"])
def test_uploaded_directory_has_the_workers_tree(setup, dest):
    setup.build("steps")

    tree = os.path.join(setup.updir, dest)
    assert read(os.path.join(tree, "a.txt")) == b"payload"
    assert read(os.path.join(tree, "sub", "b.txt")) == b"nested"


def test_multiple_file_upload_found_the_files_by_glob(setup):
    setup.build("steps")

    assert read(os.path.join(setup.updir, "multi", "a.txt")) == b"payload"


def test_downloaded_files_have_the_masters_bytes_and_mode(setup):
    setup.build("steps")

    downloaded = setup.workerPath("steps", "dl", "from-master.bin")
    assert read(downloaded) == read(setup.download)
    assert stat.S_IMODE(os.stat(downloaded).st_mode) == 0o750
    assert read(setup.workerPath("steps", "dl", "string.txt")) == STRING_DOWNLOAD.encode()


def test_filesystem_steps_changed_the_workers_directories(setup):
    setup.build("steps")

    assert read(setup.workerPath("steps", "copied", "sub", "b.txt")) == b"nested"
    assert not os.path.exists(setup.workerPath("steps", "made"))


def test_property_from_command_reads_back_through_the_rest_api(setup):
    properties = setup.master.properties(setup.build("steps")["buildid"])

    assert properties["myprop"] == "propvalue"


def test_watched_logfile_arrives_as_a_step_log(setup):
    step = setup.step("steps", "watched-logfile")

    assert "watched-line" in setup.master.step_log(setup.build("steps")["buildid"],
                                                   step["number"], "app")


@pytest.mark.parametrize("name", FAILING_STEPS)
def test_failures_are_reported_as_failure(setup, name):
    step = setup.step("failing", name)

    assert step["results"] == FAILURE, f"{name}: {step['state_string']}"


def test_truncated_upload_is_discarded_by_the_master(setup):
    setup.build("failing")

    assert not os.path.exists(os.path.join(setup.updir, "truncated"))


def test_build_stopped_through_the_api_is_cancelled_and_its_process_killed(setup):
    master = setup.master
    brid = master.force("force", "stoppable")
    build = master.wait_build_started(brid)
    pidFile = setup.workerPath("stoppable", "sleeper.pid")
    pid = int(wait_for(lambda: os.path.exists(pidFile) and read(pidFile).strip(),
                       "the sleeper to start"))

    master.stop_build(build["buildid"], reason="stopped by the interop test")
    finished = master.wait_build_finished(brid)

    assert finished["results"] == CANCELLED
    wait_for(lambda: not pid_alive(pid), "the stopped command's process to die")
