"""``Scheduler``: the base of every scheduler kind."""

from buildfarm.master.configsource import ConfigObject


class Scheduler(ConfigObject):
    """A named source of build requests for some builders."""

    def __init__(self, name, builderNames, properties=None, priority=0):  # noqa: N803
        self._remember_config_line()
        self.name = name
        self.builderNames = list(builderNames or [])
        self.properties = dict(properties or {})
        self.priority = priority

    def config_problems(self) -> list[str]:
        """What is wrong with this scheduler's arguments."""
        problems = []
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"scheduler name must be a non-empty string, not {self.name!r}")
        if not self.builderNames:
            problems.append(f"scheduler {self.name!r} names no builders")
        return problems

    def cross_check(self, config) -> list[str]:
        """Problems that need the whole configuration (e.g. an unknown upstream scheduler)."""
        return []
