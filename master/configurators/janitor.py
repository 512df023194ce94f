"""``util.JanitorConfigurator``: deletes old log contents on a schedule, as Buildbot 4.3's.

``JanitorConfigurator(logHorizon=timedelta(weeks=4), hour=12, dayOfWeek=6)`` adds to the
configuration a builder ``__Janitor`` on a slave inside the master (``LocalSlaveConfig``), a
``Nightly`` scheduler ``__Janitor`` at that time (``hour``, and ``minute``, ``dayOfMonth``,
``month``, ``dayOfWeek`` when given), and a ``ForceScheduler`` ``__Janitor_force``.  Its build
runs ``LogChunksJanitor``: in a database thread, the text of every log of a step started more
than ``logHorizon`` ago is deleted; builds, steps and log rows stay, so the builds list and
the build pages still show them.  The janitor's builds are builds like any other.

``build_data_horizon``: Buildbot also deletes its ``build_data`` table's rows; buildfarm has
no such table (a step's data is its properties and logs), so it has no effect (a warning).
"""

import datetime

from zope.interface import implementer

from buildfarm.common.results import SUCCESS
from buildfarm.master.config import IConfigurator, LocalSlaveConfig
from buildfarm.master.configobject import ConfigObject
from buildfarm.master.process.builderconfig import BuilderConfig
from buildfarm.master.process.buildstep import BuildStep, StepContext
from buildfarm.master.process.factory import BuildFactory
from buildfarm.master.schedulers.forcesched import ForceScheduler
from buildfarm.master.schedulers.timed import Nightly

JANITOR_NAME = "__Janitor"  # Buildbot's names: the builder, its slave and its Nightly scheduler
NIGHTLY_ARGUMENTS = ("minute", "dayOfMonth", "month", "dayOfWeek")


class LogChunksJanitor(BuildStep):
    """Deletes the text of the logs of steps started more than ``logHorizon`` ago."""

    default_name = "LogChunksJanitor"

    def __init__(self, logHorizon, **kwargs):  # noqa: N803 - Buildbot's name
        super().__init__(**kwargs)
        self.logHorizon = logHorizon

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        older_than = ctx.clock.seconds() - self.logHorizon.total_seconds()
        deleted = await ctx.master.db.logs.delete_old_contents(older_than)
        return SUCCESS, f"deleted {deleted} logchunks"


@implementer(IConfigurator)
class JanitorConfigurator(ConfigObject):
    """Adds the janitor's builder, slave and schedulers to ``c`` (see the module's docstring)."""

    def __init__(self, logHorizon=None, hour=0, build_data_horizon=None, **kwargs):  # noqa: N803
        self._remember_config_line()
        self.logHorizon = logHorizon
        self.hour = hour
        self.build_data_horizon = build_data_horizon
        self.nightly = {k: v for k, v in kwargs.items() if k in NIGHTLY_ARGUMENTS}
        self.unknown_args = sorted(set(kwargs) - set(NIGHTLY_ARGUMENTS))

    def configure(self, config_dict: dict) -> None:
        """Add the janitor to ``config_dict`` (nothing when it has no ``logHorizon``)."""
        if self.unknown_args:
            raise TypeError(f"unknown argument(s) {', '.join(map(repr, self.unknown_args))}")
        if self.logHorizon is None:
            return
        if not isinstance(self.logHorizon, datetime.timedelta) or self.logHorizon <= datetime.timedelta(0):
            raise TypeError(f"logHorizon must be a positive datetime.timedelta, not {self.logHorizon!r}")
        # The slaves' key master.cfg uses: c['slaves'] or Buildbot's c['workers'].
        slaves_key = "slaves" if "slaves" in config_dict else "workers"
        config_dict.setdefault(slaves_key, []).append(LocalSlaveConfig(JANITOR_NAME))
        factory = BuildFactory([LogChunksJanitor(logHorizon=self.logHorizon)])
        config_dict.setdefault("builders", []).append(
            BuilderConfig(name=JANITOR_NAME, slavenames=[JANITOR_NAME], factory=factory))
        schedulers = config_dict.setdefault("schedulers", [])
        schedulers.append(Nightly(name=JANITOR_NAME, builderNames=[JANITOR_NAME], hour=self.hour,
                                  **self.nightly))
        schedulers.append(ForceScheduler(name=JANITOR_NAME + "_force", builderNames=[JANITOR_NAME]))

    def no_effect_args(self) -> dict[str, str]:
        """Arguments accepted without effect, with why (a checkconfig warning each)."""
        if self.build_data_horizon is None:
            return {}
        return {"build_data_horizon": "buildfarm has no build data table to clean (Buildbot's build_data)"}
