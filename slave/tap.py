"""``twistd buildslave --basedir X``: the same slave as ``twistd -y X/buildbot.tac``."""

import os

from twisted.application import service
from twisted.python import usage

TAC_FILE = "buildbot.tac"


class Options(usage.Options):
    """Options of ``twistd buildslave``."""

    optParameters = [
        ["basedir", "d", ".", "The slave's base directory (holding buildbot.tac)."],
    ]

    def postOptions(self) -> None:
        tac = os.path.join(os.path.abspath(self["basedir"]), TAC_FILE)
        if not os.path.isfile(tac):
            raise usage.UsageError(f"{tac} does not exist: create the slave first")


def loadApplication(basedir: str):
    """The ``application`` that ``BASEDIR/buildbot.tac`` defines, whatever the cwd."""
    tac = os.path.join(os.path.abspath(basedir), TAC_FILE)
    with open(tac) as f:
        code = compile(f.read(), tac, "exec")
    namespace = {"__file__": tac, "__name__": "__buildbot_tac__"}
    exec(code, namespace)
    if "application" not in namespace:
        raise usage.UsageError(f"{tac} defines no 'application'")
    return namespace["application"]


def makeService(options: Options) -> service.IService:
    """The slave service tree of the basedir's buildbot.tac."""
    return service.IService(loadApplication(options["basedir"]))
