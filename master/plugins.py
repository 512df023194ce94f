"""The one namespace master.cfg imports, as Buildbot 4's ``buildbot.plugins``::

    from buildfarm.master.plugins import slaves, schedulers, steps, util

``worker``/``workers`` are aliases of ``slaves`` (``worker.Worker``), so a Buildbot 4
``master.cfg`` ports by changing its import line.
"""

from types import SimpleNamespace

from buildfarm.master.auth.users import User
from buildfarm.master.changes.filter import ChangeFilter, NotABranch
from buildfarm.master.config import SlaveConfig
from buildfarm.master.process.builderconfig import BuilderConfig
from buildfarm.master.process.factory import BuildFactory
from buildfarm.master.process.locks import MasterLock, SlaveLock
from buildfarm.master.process.properties import Interpolate, Property, WithProperties, renderer
from buildfarm.master.process.steps.fs import CopyDirectory, MakeDirectory, RemoveDirectory
from buildfarm.master.process.steps.properties import SetProperty, SetPropertyFromCommand
from buildfarm.master.process.steps.shell import ShellCommand
from buildfarm.master.process.steps.source.git import Git, GitHub, GitLab
from buildfarm.master.process.steps.source.mercurial import Mercurial
from buildfarm.master.process.steps.source.svn import SVN
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

slaves = SimpleNamespace(BuildSlave=SlaveConfig, Worker=SlaveConfig)
worker = workers = SimpleNamespace(Worker=SlaveConfig, BuildSlave=SlaveConfig)
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
    Git=Git,
    GitHub=GitHub,
    GitLab=GitLab,
    Mercurial=Mercurial,
    SVN=SVN,
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

__all__ = ["schedulers", "slaves", "steps", "util", "worker", "workers"]
