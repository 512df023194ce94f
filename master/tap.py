"""``twistd buildmaster --basedir X``: the master as a twistd plugin."""

import os

from twisted.python import usage

from buildfarm.master.config import ConfigErrors


class Options(usage.Options):
    """Options of ``twistd buildmaster``."""

    optParameters = [
        ["basedir", "d", ".", "The master's base directory (holding master.cfg)."],
        ["config", "c", "master.cfg", "The configuration file, relative to the basedir."],
    ]


def makeService(options):  # noqa: N802 - twistd's interface
    """The master's service tree; a broken master.cfg stops twistd with its errors."""
    from buildfarm.master.service import BuildMaster

    basedir = os.path.abspath(options["basedir"])
    try:
        return BuildMaster(basedir, options["config"])
    except ConfigErrors as e:
        raise SystemExit(f"master.cfg has errors:\n{e}") from None
