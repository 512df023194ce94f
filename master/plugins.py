"""The one namespace master.cfg imports, as Buildbot 4's ``buildbot.plugins``::

    from buildfarm.master.plugins import slaves, schedulers, steps, util
    from buildfarm.master.plugins import *   # as ``from buildbot.plugins import *``

``worker``/``workers`` are aliases of ``slaves`` (``worker.Worker``).  Each namespace knows
every name Buildbot 4.3 offers in it (``master/pluginspace.py``): one buildfarm does not
provide raises ``not supported by buildfarm: <name> (Buildbot's <module>.<name>)``, which
checkconfig reports at the line that used it.  docs/porting.md lists what is supported.
"""

from types import SimpleNamespace

from buildfarm.master.auth.users import User
from buildfarm.master.changes.filter import ChangeFilter, NotABranch
from buildfarm.master.changes.pb import PBChangeSource
from buildfarm.master.config import SlaveConfig, Worker
from buildfarm.master.pluginspace import PluginNamespace
from buildfarm.master.process.builderconfig import BuilderConfig
from buildfarm.master.process.factory import BuildFactory
from buildfarm.master.process.locks import MasterLock, SlaveLock
from buildfarm.master.process.properties import Interpolate, Property, WithProperties, renderer
from buildfarm.master.process.steps.fs import CopyDirectory, MakeDirectory, RemoveDirectory
from buildfarm.master.process.steps.properties import SetProperty, SetPropertyFromCommand
from buildfarm.master.process.steps.shell import ShellCommand
from buildfarm.master.process.steps.transfer import (
    DirectoryUpload,
    FileDownload,
    FileUpload,
    StringDownload,
)
from buildfarm.master.process.steps.trigger import Trigger
from buildfarm.master.schedulers.basic import AnyBranchScheduler, SingleBranchScheduler
from buildfarm.master.schedulers.dependent import Dependent
from buildfarm.master.schedulers.forceparams import (
    BooleanParameter,
    ChoiceStringParameter,
    FixedParameter,
    IntParameter,
    StringParameter,
    TextParameter,
)
from buildfarm.master.schedulers.forcesched import ForceScheduler
from buildfarm.master.schedulers.timed import Nightly, Periodic
from buildfarm.master.schedulers.triggerable import Triggerable

slaves = SimpleNamespace(BuildSlave=SlaveConfig, Worker=Worker)
worker = SimpleNamespace(Worker=Worker, BuildSlave=SlaveConfig)
changes = SimpleNamespace(PBChangeSource=PBChangeSource)
reporters = SimpleNamespace()
secrets = SimpleNamespace()
webhooks = SimpleNamespace()
schedulers = SimpleNamespace(
    ForceScheduler=ForceScheduler,
    Periodic=Periodic,
    Nightly=Nightly,
    SingleBranchScheduler=SingleBranchScheduler,
    Scheduler=SingleBranchScheduler,
    AnyBranchScheduler=AnyBranchScheduler,
    Triggerable=Triggerable,
    Dependent=Dependent,
)
steps = SimpleNamespace(
    ShellCommand=ShellCommand,
    FileUpload=FileUpload,
    DirectoryUpload=DirectoryUpload,
    FileDownload=FileDownload,
    StringDownload=StringDownload,
    MakeDirectory=MakeDirectory,
    RemoveDirectory=RemoveDirectory,
    CopyDirectory=CopyDirectory,
    SetProperty=SetProperty,
    SetPropertyFromCommand=SetPropertyFromCommand,
    Trigger=Trigger,
)
util = SimpleNamespace(
    BuilderConfig=BuilderConfig,
    BuildFactory=BuildFactory,
    Property=Property,
    Interpolate=Interpolate,
    WithProperties=WithProperties,
    renderer=renderer,
    MasterLock=MasterLock,
    SlaveLock=SlaveLock,
    WorkerLock=SlaveLock,
    ChangeFilter=ChangeFilter,
    NotABranch=NotABranch,
    StringParameter=StringParameter,
    TextParameter=TextParameter,
    IntParameter=IntParameter,
    BooleanParameter=BooleanParameter,
    ChoiceStringParameter=ChoiceStringParameter,
    FixedParameter=FixedParameter,
    User=User,
)

# The namespaces above become PluginNamespaces that know Buildbot's names too.
changes, reporters, schedulers, secrets, steps, util, webhooks, worker = (
    PluginNamespace(name, vars(namespace)) for name, namespace in (
        ("changes", changes), ("reporters", reporters), ("schedulers", schedulers),
        ("secrets", secrets), ("steps", steps), ("util", util), ("webhooks", webhooks),
        ("worker", worker)))
slaves = PluginNamespace("worker", vars(slaves))
workers = worker
# Buildbot's ``statistics`` is a module of its own: none of its names is provided.
statistics = PluginNamespace("statistics", {}, buildbot={}, buildbot_module="buildbot.statistics")

# What ``from buildfarm.master.plugins import *`` binds: Buildbot's names, and buildfarm's own.
__all__ = ["changes", "reporters", "schedulers", "secrets", "slaves", "statistics", "steps", "util",
           "webhooks", "worker", "workers"]
