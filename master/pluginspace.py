"""``PluginNamespace``: one namespace of ``buildfarm.master.plugins`` (``steps``, ``util``, ...)
that knows every name Buildbot 4.3 offers in the same namespace (``master/buildbotnames.py``).

A name buildfarm provides is a plain attribute.  A Buildbot name it does not provide raises
``NotSupportedByBuildfarm`` (an ``AttributeError``, so ``hasattr`` and ``getattr(ns, n, default)``
behave) saying so: ``not supported by buildfarm: GitPoller (Buildbot's
buildbot.changes.gitpoller.GitPoller)``.  A name neither offers raises ``UnknownPluginName``.
checkconfig reports both at the line of master.cfg (or of the helper module) that used them.
"""

from collections.abc import Mapping
from typing import Any

from buildfarm.master.buildbotnames import BUILDBOT_PLUGINS, BUILDBOT_VERSION


class NotSupportedByBuildfarm(AttributeError):
    """master.cfg used a Buildbot name that buildfarm does not provide."""

    def __init__(self, name: str, buildbot_path: str):
        super().__init__(f"not supported by buildfarm: {name} (Buildbot's {buildbot_path})")
        self.buildbot_path = buildbot_path


class UnknownPluginName(AttributeError):
    """master.cfg used a name that neither buildfarm nor Buildbot offers in that namespace."""


class PluginNamespace:
    """The names buildfarm provides in one plugins namespace, and Buildbot's for the rest."""

    def __init__(self, namespace: str, provided: Mapping[str, Any],
                 buildbot: Mapping[str, str] | None = None, buildbot_module: str | None = None):
        """``buildbot`` maps Buildbot's names to ``module.attribute`` (dotted names such as
        ``svn.split_file_branches`` become sub-namespaces); ``buildbot_module`` is the module
        every other public name would come from (``buildbot.statistics``), when there is one."""
        buildbot = dict(BUILDBOT_PLUGINS.get(namespace, {}) if buildbot is None else buildbot)
        children: dict[str, dict[str, str]] = {}
        for name in list(buildbot):
            head, dot, rest = name.partition(".")
            if dot:
                children.setdefault(head, {})[rest] = buildbot.pop(name)
        self._namespace = namespace
        self._buildbot = buildbot
        self._buildbot_module = buildbot_module
        for head, names in children.items():
            own = provided.get(head)
            own_names = own.provided() if isinstance(own, PluginNamespace) else vars(own) if own else {}
            setattr(self, head, PluginNamespace(f"{namespace}.{head}", own_names, names))
        for name, value in provided.items():
            if name not in children:
                setattr(self, name, value)

    def __getattr__(self, name: str):
        # Only called for names not set in __init__.
        if name.startswith("__") or name.startswith("_"):
            raise AttributeError(name)
        target = self._buildbot.get(name)
        if target is None and self._buildbot_module is not None:
            target = f"{self._buildbot_module}.{name}"
        if target is not None:
            raise NotSupportedByBuildfarm(name, target)
        raise UnknownPluginName(
            f"buildfarm.master.plugins.{self._namespace} has no name {name!r}, and neither has "
            f"Buildbot {BUILDBOT_VERSION}'s buildbot.plugins.{self._namespace}")

    def provided(self) -> dict[str, Any]:
        """The names buildfarm provides here (sub-namespaces included)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def buildbot_names(self) -> dict[str, str]:
        """Buildbot's names of this namespace (without its sub-namespaces')."""
        return dict(self._buildbot)

    def supports(self, name: str) -> bool:
        """Whether buildfarm provides ``name`` here."""
        return name in self.provided()

    def __dir__(self) -> list[str]:
        return sorted(self.provided())

    def __repr__(self) -> str:
        return f"<buildfarm.master.plugins.{self._namespace}>"
