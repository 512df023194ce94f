"""The ``buildbot.tac`` a master basedir gets, and what it calls."""

import os

from twisted.logger import ILogObserver, textFileLogObserver
from twisted.python.logfile import LogFile

from buildfarm.master.config import ConfigErrors

LOG_ROTATE_BYTES = 10_000_000
LOG_ROTATED_FILES = 10

TAC_TEMPLATE = '''\
# buildfarm master: run by `buildmaster start` as `twistd -y buildbot.tac`.
import os

from twisted.application import service

from buildfarm.master.scripts.tacfile import setup_master

basedir = {basedir!r}
if basedir == ".":
    basedir = os.path.abspath(os.path.dirname(__file__))
configfile = "master.cfg"
rotate_length = {rotate_length}
max_rotated_files = {max_rotated_files}

application = service.Application("buildmaster")
setup_master(application, basedir, configfile, rotate_length, max_rotated_files)
'''


def tac_text(basedir: str, relocatable: bool = False) -> str:
    """The text of a master's buildbot.tac."""
    return TAC_TEMPLATE.format(
        basedir="." if relocatable else os.path.abspath(basedir),
        rotate_length=LOG_ROTATE_BYTES,
        max_rotated_files=LOG_ROTATED_FILES,
    )


def setup_master(application, basedir: str, configfile: str, rotate_length: int,
                 max_rotated_files: int) -> None:
    """Attach a rotating twistd.log and the BuildMaster to a twistd application."""
    from buildfarm.master.service import BuildMaster

    logfile = LogFile.fromFullPath(os.path.join(basedir, "twistd.log"),
                                   rotateLength=rotate_length, maxRotatedFiles=max_rotated_files)
    application.setComponent(ILogObserver, textFileLogObserver(logfile))
    try:
        master = BuildMaster(basedir, configfile)
    except ConfigErrors as e:
        raise SystemExit(f"{configfile} has errors:\n{e}") from None
    master.setServiceParent(application)
