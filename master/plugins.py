"""The one namespace master.cfg imports, as Buildbot 4's ``buildbot.plugins``::

    from buildfarm.master.plugins import slaves, schedulers, steps, util
    from buildfarm.master.plugins import *   # as ``from buildbot.plugins import *``

``worker``/``workers`` are aliases of ``slaves`` (``worker.Worker``).  Each namespace knows
every name Buildbot 4.3 offers in it (``master/pluginspace.py``): one buildfarm does not
provide raises ``not supported by buildfarm: <name> (Buildbot's <module>.<name>)``, which
checkconfig reports at the line that used it.  docs/porting.md lists what is supported.
"""

from types import SimpleNamespace

from buildfarm.master.auth import authz as _authz
from buildfarm.master.auth import webauth as _webauth
from buildfarm.master.auth.users import User
from buildfarm.master.changes import svnpoller
from buildfarm.master.changes.filter import ChangeFilter, NotABranch
from buildfarm.master.changes.gitpoller import GitPoller
from buildfarm.master.changes.hgpoller import HgPoller
from buildfarm.master.changes.pb import PBChangeSource
from buildfarm.master.config import SlaveConfig, Worker
from buildfarm.master.configurators.janitor import JanitorConfigurator
from buildfarm.master.pluginspace import PluginNamespace
from buildfarm.master.process import results as _results
from buildfarm.master.process.builderconfig import BuilderConfig
from buildfarm.master.process.buildstep import BuildStep
from buildfarm.master.process.factory import BuildFactory
from buildfarm.master.process.locks import MasterLock, SlaveLock
from buildfarm.master.process.logobserver import LogLineObserver
from buildfarm.master.process.properties import Interpolate, Property, Secret, WithProperties, renderer
from buildfarm.master.process.steps.cmake import CMake
from buildfarm.master.process.steps.compile import (
    Compile,
    Configure,
    Test,
    WarningCountingShellCommand,
)
from buildfarm.master.process.steps.fs import CopyDirectory, FileExists, MakeDirectory, RemoveDirectory
from buildfarm.master.process.steps.isolate import IsolateArchive, RunIsolated
from buildfarm.master.process.steps.mastershell import MasterShellCommand
from buildfarm.master.process.steps.properties import (
    SetProperties,
    SetPropertiesFromEnv,
    SetProperty,
    SetPropertyFromCommand,
)
from buildfarm.master.process.steps.shell import ShellCommand
from buildfarm.master.process.steps.shellsequence import ShellArg, ShellSequence
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
from buildfarm.master.reporters.generators.build import BuildStartEndStatusGenerator, BuildStatusGenerator
from buildfarm.master.reporters.generators.worker import WorkerMissingGenerator
from buildfarm.master.reporters.github import GitHubCommentPush, GitHubStatusPush
from buildfarm.master.reporters.gitlab import GitLabStatusPush
from buildfarm.master.reporters.http import HttpStatusPush
from buildfarm.master.reporters.mail import MailNotifier
from buildfarm.master.reporters.message import (
    MessageFormatter,
    MessageFormatterEmpty,
    MessageFormatterFunction,
    MessageFormatterMissingWorker,
    MessageFormatterRenderable,
)
from buildfarm.master.schedulers.basic import AnyBranchScheduler, SingleBranchScheduler
from buildfarm.master.schedulers.dependent import Dependent
from buildfarm.master.schedulers.forceparams import (
    BooleanParameter,
    ChoiceStringParameter,
    CodebaseParameter,
    FixedParameter,
    IntParameter,
    StringParameter,
    TextParameter,
)
from buildfarm.master.schedulers.forcesched import ForceScheduler
from buildfarm.master.schedulers.timed import Nightly, Periodic
from buildfarm.master.schedulers.triggerable import Triggerable
from buildfarm.master.secrets.providers.file import SecretInAFile
from buildfarm.master.secrets.providers.passwordstore import SecretInPass

slaves = SimpleNamespace(BuildSlave=SlaveConfig, Worker=Worker)
worker = SimpleNamespace(Worker=Worker, BuildSlave=SlaveConfig)
changes = SimpleNamespace(GitPoller=GitPoller, HgPoller=HgPoller, SVNPoller=svnpoller.SVNPoller,
                          PBChangeSource=PBChangeSource)
reporters = SimpleNamespace(
    HttpStatusPush=HttpStatusPush,
    MailNotifier=MailNotifier,
    GitHubStatusPush=GitHubStatusPush,
    GitHubCommentPush=GitHubCommentPush,
    GitLabStatusPush=GitLabStatusPush,
    BuildStatusGenerator=BuildStatusGenerator,
    BuildStartEndStatusGenerator=BuildStartEndStatusGenerator,
    WorkerMissingGenerator=WorkerMissingGenerator,
    MessageFormatter=MessageFormatter,
    MessageFormatterMissingWorker=MessageFormatterMissingWorker,
    MessageFormatterFunction=MessageFormatterFunction,
    MessageFormatterRenderable=MessageFormatterRenderable,
    MessageFormatterEmpty=MessageFormatterEmpty,
)
secrets = SimpleNamespace(SecretInAFile=SecretInAFile, SecretInPass=SecretInPass)
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
    SetProperties=SetProperties,
    SetPropertiesFromEnv=SetPropertiesFromEnv,
    FileExists=FileExists,
    ShellSequence=ShellSequence,
    Configure=Configure,
    Compile=Compile,
    Test=Test,
    WarningCountingShellCommand=WarningCountingShellCommand,
    CMake=CMake,
    MasterShellCommand=MasterShellCommand,
    BuildStep=BuildStep,
    Trigger=Trigger,
    Git=Git,
    GitHub=GitHub,
    GitLab=GitLab,
    Mercurial=Mercurial,
    SVN=SVN,
    # buildfarm's own: runs from a hash (docs/cas.md)
    RunIsolated=RunIsolated,
    IsolateArchive=IsolateArchive,
)
_web_auth_names = {name: getattr(_authz, name) for name in _authz.BUILDBOT_NAMES} | {
    name: getattr(_webauth, name) for name in _webauth.BUILDBOT_NAMES}
util = SimpleNamespace(
    BuilderConfig=BuilderConfig,
    BuildFactory=BuildFactory,
    Property=Property,
    Interpolate=Interpolate,
    Secret=Secret,
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
    CodebaseParameter=CodebaseParameter,
    User=User,
    # c['www']['auth'] and ['authz'] (master/auth/webauth.py, master/auth/authz.py)
    **_web_auth_names,
    JanitorConfigurator=JanitorConfigurator,
    ShellArg=ShellArg,
    LogLineObserver=LogLineObserver,
    Results=_results.Results,
    SUCCESS=_results.SUCCESS,
    WARNINGS=_results.WARNINGS,
    FAILURE=_results.FAILURE,
    SKIPPED=_results.SKIPPED,
    EXCEPTION=_results.EXCEPTION,
    RETRY=_results.RETRY,
    CANCELLED=_results.CANCELLED,
    svn=SimpleNamespace(split_file_alwaystrunk=svnpoller.split_file_alwaystrunk,
                        split_file_branches=svnpoller.split_file_branches,
                        split_file_projects_branches=svnpoller.split_file_projects_branches),
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
