"""``BuilderConfig``: what master.cfg says of one builder (``util.BuilderConfig(...)``).

It lives in process, beside the ``Builder`` that runs it; ``master/config.py`` (above
process) checks it while loading master.cfg.
"""

from buildfarm.master.configobject import ConfigObject


class BuilderConfig(ConfigObject):
    """A builder: a name, the slaves that may run it and the factory of its steps."""

    def __init__(
        self, name, slavenames=None, factory=None, builddir=None, tags=None, properties=None,
        env=None, slavename=None, workernames=None, workername=None, locks=None, nextSlave=None,  # noqa: N803
        nextWorker=None, canStartBuild=None, collapseRequests=None, priority=0, **kwargs,  # noqa: N803
    ):
        self._remember_config_line()
        self.name = name
        names = list(slavenames or workernames or [])
        for single in (slavename, workername):
            if single:
                names.append(single)
        self.slavenames = names
        self.factory = factory
        self.builddir = builddir or (_safe_dirname(name) if isinstance(name, str) else None)
        self.tags = list(tags or [])
        self.properties = dict(properties or {})
        self.env = dict(env or {})
        self.locks = list(locks or [])
        self.nextSlave = nextSlave or nextWorker
        self.canStartBuild = canStartBuild
        self.collapseRequests = collapseRequests
        self.priority = priority
        self.unknown_args = sorted(kwargs)


def _safe_dirname(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
