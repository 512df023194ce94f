"""``BuildFactory``: the ordered steps every build of a builder runs."""

from buildfarm.master.configobject import ConfigObject


class BuildFactory(ConfigObject):
    """The steps of a build, in order: ``util.BuildFactory([steps.ShellCommand(...)])``."""

    def __init__(self, steps=None):
        self._remember_config_line()
        self.steps = list(steps or [])

    def addStep(self, step) -> None:  # noqa: N802 - Buildbot's name, kept for ported configs
        """Append one step."""
        self.steps.append(step)

    def addSteps(self, steps) -> None:  # noqa: N802
        """Append several steps."""
        self.steps.extend(steps)
