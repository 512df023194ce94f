"""Loading and validating ``master.cfg`` into a plain ``MasterConfig``.

``master.cfg`` is a Python file defining ``BuildmasterConfig`` (Buildbot's convention).  It
is executed in a fresh namespace, one statement at a time, with the helper modules it imports
from beside it (``master/configexec.py``); every problem found, whether a syntax error, an
exception or a validation failure, becomes a ``ConfigError`` carrying the file and line, and
all of them are reported at once through ``ConfigErrors``.  What is accepted without effect
(``NO_EFFECT_KEYS``, ...) becomes a warning in ``MasterConfig.warnings``.
"""

import ast
import math
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from twisted.application.service import IService
from zope.interface import Interface

from buildfarm.master.auth.clients import validate_clients
from buildfarm.master.auth.identity import READ_SCOPES, is_plain_read_scope
from buildfarm.master.auth.roles import Role, validate_roles
from buildfarm.master.auth.secret import Secret, SecretError, resolve_secret
from buildfarm.master.auth.users import Account, validate_users
from buildfarm.master.auth.webusers import WebAuth, anonymous_may_read, configure_web_auth
from buildfarm.master.cas.config import validate_cas_config
from buildfarm.master.cas.settings import CASSettings
from buildfarm.master.changes.hooks import unauthenticated_dialects, validate_dialects
from buildfarm.master.changes.pb import PBChangeSource
from buildfarm.master.cluster.settings import (
    WAKEUPS_BROKER,
    WAKEUPS_POSTGRESQL,
    MultiMasterSettings,
    validate_multimaster_config,
)
from buildfarm.master.configexec import (  # noqa: F401 - BesideConfigImporter is imported from here
    BesideConfigImporter,
    ConfigError,
    ConfigErrors,
    ConfigExecution,
)
from buildfarm.master.configobject import ConfigObject
from buildfarm.master.http.limits import CONFIG_KEYS as LIMIT_KEYS
from buildfarm.master.http.limits import HTTPLimits
from buildfarm.master.mq.settings import MQSettings, validate_mq_config
from buildfarm.master.pb.limits import PBLimits
from buildfarm.master.process.builderconfig import BuilderConfig
from buildfarm.master.process.buildstep import BuildStep
from buildfarm.master.process.factory import BuildFactory
from buildfarm.master.process.locks import ACCESS_MODES, BaseLock, LockAccess
from buildfarm.master.queue.settings import QueueSettings, validate_queue_config
from buildfarm.master.schedulers.base import Scheduler
from buildfarm.master.schedulers.forceparams import BaseParameter
from buildfarm.master.schedulers.forcesched import ForceScheduler
from buildfarm.master.secrets.interfaces import ISecretProvider
from buildfarm.master.slaveapi.settings import SlaveAPISettings, validate_slaveapi_config
from buildfarm.master.tasks.dimensions import slave_dimensions_problems
from buildfarm.master.tasks.settings import TaskSettings, validate_tasks_config

DEFAULT_PB_PORT = 9989
DEFAULT_WWW_PORT = 8010
DEFAULT_DB_URL = "sqlite:///state.sqlite"
DEFAULT_LISTEN_BACKLOG = 1024
DEFAULT_PING_INTERVAL_S = 60.0
DEFAULT_MISSING_TIMEOUT_S = 3600.0  # Buildbot's: a slave gone an hour is missing
DEFAULT_PING_TIMEOUT_S = 30.0

KNOWN_KEYS = frozenset(
    {
        "slaves", "workers", "builders", "schedulers", "protocols", "www", "db", "db_url",
        "title", "titleURL", "buildbotURL", "buildslavePortnum", "slavePortnum",
        "change_source", "changes", "collapseRequests", "properties", "locks", "multiMaster",
        "users", "slaveapi", "cas", "tasks", "configurators", "services", "secretsProviders",
        "roles", "clients", "clients_key", "queue", "multiMasterSettings", "mq",
    }
)


class SlaveConfig(ConfigObject):
    """A slave the master accepts: ``slaves.BuildSlave('bs1', 'pass')`` in master.cfg."""

    kind = "BuildSlave"  # what master.cfg called it, in messages
    local = False  # True for a slave inside the master (LocalSlaveConfig): no PB login
    # Arguments of Buildbot 4.3's Worker that buildfarm accepts but does not use (a warning each).
    NO_EFFECT_ARGS = {
        "defaultProperties": "use properties=",
        "locks": "use util.SlaveLock on builders or steps",
        "machine_name": "buildfarm has no machines",
    }

    def __init__(self, name, password, max_builds=None, properties=None, notify_on_missing=None,
                 missing_timeout=DEFAULT_MISSING_TIMEOUT_S, keepalive_interval=None, dimensions=None,
                 **kwargs):
        self._remember_config_line()
        self.name = name
        self.password = password
        self.max_builds = max_builds
        self.properties = dict(properties or {})
        # Mark the slave missing after missing_timeout s gone (master/process/missing.py).
        self.notify_on_missing = [notify_on_missing] if isinstance(notify_on_missing, str) else \
            list(notify_on_missing or [])
        self.missing_timeout = missing_timeout
        # This slave's PB ping interval (None: c['protocols']['pb']['ping_interval']).
        self.keepalive_interval = keepalive_interval
        # This slave's task dimensions ({key: value or [values]}; docs/tasks.md): they win over
        # what the slave reports and its info/dimensions.json.
        self.dimensions = {} if dimensions is None else dimensions
        self.no_effect_args = sorted(k for k in kwargs if k in self.NO_EFFECT_ARGS)
        self.unknown_args = sorted(k for k in kwargs if k not in self.NO_EFFECT_ARGS)

    def config_problems(self) -> list[str]:
        """What is wrong with the arguments that have an effect (messages name the kind)."""
        about = f"{self.kind} {self.name!r}"
        problems = []
        if self.max_builds is not None and (isinstance(self.max_builds, bool) or
                                            not isinstance(self.max_builds, int) or self.max_builds < 1):
            problems.append(f"{about}: max_builds must be a positive integer or None, "
                            f"not {self.max_builds!r}")
        if not all(isinstance(a, str) for a in self.notify_on_missing):
            problems.append(f"{about}: notify_on_missing must be an address or a list of addresses")
        if self.missing_timeout is not None and not _non_negative(self.missing_timeout):
            problems.append(f"{about}: missing_timeout must be a number of seconds (0 or None: never "
                            f"missing), not {self.missing_timeout!r}")
        if self.keepalive_interval is not None and not (_non_negative(self.keepalive_interval)
                                                        and self.keepalive_interval > 0):
            problems.append(f"{about}: keepalive_interval must be a positive number of seconds, "
                            f"not {self.keepalive_interval!r}")
        problems += [f"{about}: {p}" for p in slave_dimensions_problems(self.dimensions)]
        return problems


def _non_negative(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and value >= 0


class LocalSlaveConfig(SlaveConfig):
    """A slave inside the master, made by a configurator (the janitor's): it never logs in over
    PB (it has no password) and runs only steps that run on the master (``master/process/
    localslave.py``).  Buildbot's ``LocalWorker`` runs a whole worker; this one runs no command."""

    kind = "LocalSlave"
    local = True

    def __init__(self, name):
        super().__init__(name, None)


class IConfigurator(Interface):
    """What ``c['configurators']`` holds: it edits the ``BuildmasterConfig`` dict before the
    dict is validated (Buildbot's ``IConfigurator``; ``util.JanitorConfigurator``)."""

    def configure(config_dict):
        """Add to or change ``config_dict`` (builders, schedulers, workers, ...) in place."""


class Worker(SlaveConfig):
    """Buildbot 4's name for a slave: ``worker.Worker('bs1', 'pass')``."""

    kind = "Worker"

    # Its own signature, so that Python's own errors about its arguments say Worker.
    def __init__(self, name, password, max_builds=None, properties=None, notify_on_missing=None,
                 missing_timeout=DEFAULT_MISSING_TIMEOUT_S, keepalive_interval=None, dimensions=None,
                 **kwargs):
        super().__init__(name, password, max_builds=max_builds, properties=properties,
                         notify_on_missing=notify_on_missing, missing_timeout=missing_timeout,
                         keepalive_interval=keepalive_interval, dimensions=dimensions, **kwargs)

    @property
    def workername(self) -> str:
        """Buildbot's attribute for the name (configs read ``w.workername``)."""
        return self.name


# Keys of Buildbot 4.3's BuildmasterConfig that buildfarm accepts without using: why each has
# no effect.  Given a value other than None or an empty list or dict, each gets a warning.
NO_EFFECT_KEYS = {
    "buildbotNetUsageData": "nothing is sent: buildfarm never sends usage data anywhere",
    "caches": "buildfarm has no object caches to size: the pages and the API read the database "
              "on each request",
    "buildCacheSize": "buildfarm keeps no build cache to size",
    "changeCacheSize": "buildfarm keeps no change cache to size",
    "changeHorizon": "buildfarm keeps every change",
    "logCompressionLimit": "buildfarm stores logs uncompressed",
    "logCompressionMethod": "buildfarm stores logs uncompressed",
    "logEncoding": "buildfarm decodes logs as UTF-8",
    "logMaxSize": "buildfarm does not truncate logs",
    "logMaxTailSize": "buildfarm does not truncate logs",
    "manhole": "buildfarm has no manhole",
    "metrics": "buildfarm's metrics are always served at /metrics (docs/api.md)",
    "prioritizeBuilders": "builders are served by their priority= (util.BuilderConfig)",
    "revlink": "buildfarm does not link revisions",
    "user_managers": "buildfarm's users are c['users']",
    "validation": "buildfarm validates with its own rules",
    "codebaseGenerator": "buildfarm does not generate codebases from changes",
    "codebases": "buildfarm has no codebase objects",
    "projects": "buildfarm has no project objects",
    "machines": "buildfarm has no machines",
    "select_next_worker": "use nextSlave on the builder",
}
# The keys of c['www'] buildfarm reads.
WWW_KEYS = frozenset({"port", "allow_anonymous_read", "anonymous_scopes", "change_hook_dialects",
                      "auth", "authz", "trusted_proxies", *LIMIT_KEYS})
# Buildbot 4.3's other keys of c['www'], accepted without effect (a warning each).
WWW_NO_EFFECT_KEYS = {
    "plugins": "buildfarm's web pages are built in; there are no www plugins",
    **dict.fromkeys((
        "allowed_origins", "avatar_methods", "change_hook_auth",
        "cookie_expiration_time", "custom_templates_dir", "debug",
        "default_page", "json_cache_seconds", "jsonp", "logRotateLength", "logfileName",
        "maxRotatedFiles", "rest_minimum_version", "ui_default_config", "versions",
        "ws_ping_interval", "project_widgets", "graphql", "theme",
    ), "buildfarm's web server does not read it (docs/porting.md)"),
}
KNOWN_KEYS = KNOWN_KEYS | NO_EFFECT_KEYS.keys()
MULTI_MASTER_CAS_NEEDS_S3 = (
    "c['multiMaster'] = True needs the CAS on the S3 back-end (c['cas'] = {'backend': 's3', 'bucket': ...}): "
    "a file store is one master's disk, which the others cannot read")
MULTI_MASTER_CAS_NEEDS_SECRET = (
    "c['multiMaster'] = True needs c['cas']['upload_secret'] set, the same on every master: an upload "
    "ticket or a task's grant from one master is checked by another")
MULTI_MASTER_NEEDS_WAKEUPS = ("c['multiMaster'] = True needs c['mq'] = {'type': 'amqp', ...} or a PostgreSQL "
                              "db_url (LISTEN/NOTIFY) for the masters to wake each other")


@dataclass
class MasterConfig:
    """The validated configuration the master's services read."""

    filename: str
    slaves: dict[str, SlaveConfig] = field(default_factory=dict)
    builders: list[BuilderConfig] = field(default_factory=list)
    schedulers: list[Scheduler] = field(default_factory=list)
    pb_port: str = f"tcp:{DEFAULT_PB_PORT}"
    listen_backlog: int = DEFAULT_LISTEN_BACKLOG
    ping_interval: float = DEFAULT_PING_INTERVAL_S
    ping_timeout: float = DEFAULT_PING_TIMEOUT_S
    pb_limits: PBLimits = field(default_factory=PBLimits)
    www_port: str | None = f"tcp:{DEFAULT_WWW_PORT}"
    www_allow_anonymous_read: bool = True  # web pages readable without logging in (never acting)
    www_limits: HTTPLimits = field(default_factory=HTTPLimits)  # timeouts and caps of the HTTP ports
    # What a caller without credentials may do on every HTTP surface (master/auth/service.py).
    www_anonymous_scopes: tuple[str, ...] = READ_SCOPES
    users: list[Account] = field(default_factory=list)
    roles: list[Role] = field(default_factory=list)  # c['roles'] (master/auth/roles.py)
    # c['clients']: Taskcluster-style clients, ``(Client, Secret)`` pairs (master/auth/clients.py)
    clients: list = field(default_factory=list)
    # c['clients_key']: the key database clients' access tokens are encrypted under (None: the
    # basedir's clients.key, made on the first start)
    clients_key: Secret | None = None
    # c['www']['auth'] and ['authz'] (master/auth/webusers.py); their users are in ``users`` too.
    web_auth: WebAuth = field(default_factory=WebAuth)
    # What checkconfig says about who holds which scope when www['auth'] or ['authz'] is set.
    auth_explanation: list[str] = field(default_factory=list)
    # Problems that do not stop the master but that `buildmaster checkconfig` reports.
    warnings: list[str] = field(default_factory=list)
    db_url: str = DEFAULT_DB_URL
    title: str = "buildfarm"
    title_url: str | None = None  # c['titleURL']: where the title in every page's header links
    buildbot_url: str | None = None  # c['buildbotURL']: the web site's public URL, ending in '/'
    properties: dict = field(default_factory=dict)
    collapse_requests: bool = True
    change_secret: str | None = None
    # c['www']['change_hook_dialects']: dialect -> options, served at /change_hook/<dialect>
    change_hook_dialects: dict[str, dict] = field(default_factory=dict)
    # c['change_source']: the change sources (services, run by master/changes/manager.py);
    # PBChangeSource logins are read from here too
    change_sources: list = field(default_factory=list)
    multi_master: bool = False
    # c['multiMasterSettings']: heartbeats and when a silent master is dead (master/cluster/)
    multi_master_settings: MultiMasterSettings = field(default_factory=MultiMasterSettings)
    mq: MQSettings = field(default_factory=MQSettings)  # c['mq']: the event bus (master/mq/)
    slaveapi: SlaveAPISettings = field(default_factory=SlaveAPISettings)
    cas: CASSettings = field(default_factory=CASSettings)  # c['cas']: the content-addressed store
    tasks: TaskSettings = field(default_factory=TaskSettings)  # c['tasks']: the Swarming API's limits
    queue: QueueSettings = field(default_factory=QueueSettings)  # c['queue']: the Queue's task queues
    # c['services']: Twisted services master.cfg adds, run as children of the master
    services: list = field(default_factory=list)
    # c['secretsProviders']: asked in order for the secrets a build renders (master/secrets/)
    secrets_providers: list = field(default_factory=list)

    def builder(self, name: str) -> BuilderConfig | None:
        """The builder of that name, if configured."""
        return next((b for b in self.builders if b.name == name), None)


def load_config(path: str) -> MasterConfig:
    """Execute and validate master.cfg; raise ``ConfigErrors`` listing every problem."""
    execution = ConfigExecution(path)
    namespace = execution.run()
    errors = execution.errors
    filename = os.path.basename(execution.path)
    raw = namespace.get("BuildmasterConfig")
    if not isinstance(raw, dict):
        if not errors:  # else an error above may be why it is missing
            errors.append(ConfigError(filename, None, "does not define a BuildmasterConfig dict"))
        raise ConfigErrors(errors)
    key_lines = _key_lines(execution.source)
    errors += run_configurators(raw, filename, key_lines)
    builder = _ConfigBuilder(filename, raw, key_lines)
    builder.errors = list(errors)
    builder.failed_keys = execution.failed_keys
    return builder.build(execution.path)


def run_configurators(raw: dict, filename: str, key_lines: dict[str, int]) -> list[ConfigError]:
    """Let each of ``c['configurators']`` edit ``raw`` in place, in order, before validation
    (as Buildbot does); a configurator that fails is an error at its line."""
    configurators = raw.get("configurators", [])
    if not isinstance(configurators, list | tuple):
        return [ConfigError(filename, key_lines.get("configurators"), "c['configurators'] must be a list")]
    errors = []
    for configurator in configurators:
        line = getattr(configurator, "config_line", None) or key_lines.get("configurators")
        if not IConfigurator.providedBy(configurator):
            errors.append(_at(filename, line, f"c['configurators'] holds {configurator!r}, not a "
                                              "configurator (util.JanitorConfigurator)"))
            continue
        try:
            configurator.configure(raw)
        except Exception as e:
            errors.append(_at(filename, line, f"{type(configurator).__name__} failed: {e}"))
    return errors


def _key_lines(source: str) -> dict[str, int]:
    """The line of the last assignment to each ``c['key']`` in master.cfg."""
    lines: dict[str, int] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
                    key = target.slice.value
                    if isinstance(key, str):
                        lines[key] = max(lines.get(key, 0), node.lineno)  # the last one counts
                elif isinstance(target, ast.Name) and target.id == "BuildmasterConfig":
                    for key, line in _literal_key_lines(node.value).items():
                        lines[key] = max(lines.get(key, 0), line)
    return lines


def _literal_key_lines(value: ast.expr) -> dict[str, int]:
    """The line of each key of ``BuildmasterConfig = {'key': ...}`` (or ``dict(key=...)``)."""
    if isinstance(value, ast.Dict):
        return {k.value: k.lineno for k in value.keys
                if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "dict":
        return {k.arg: k.value.lineno for k in value.keywords if k.arg}
    return {}


class _ConfigBuilder:
    """Turns the raw ``BuildmasterConfig`` dict into a ``MasterConfig``, gathering errors."""

    def __init__(self, filename: str, raw: dict, key_lines: dict[str, int]):
        self.filename = filename
        self.raw = raw
        self.key_lines = key_lines
        self.errors: list[ConfigError] = []
        self.warnings: list[str] = []
        self.checked_factories: list[BuildFactory] = []
        self.failed_keys: set[str] = set()  # keys master.cfg failed to set (ConfigExecution)

    def error(self, line: int | None, message: str) -> None:
        self.errors.append(_at(self.filename, line, message))

    def warning(self, line: int | None, message: str) -> None:
        self.warnings.append(str(_at(self.filename, line, message)))

    def key_error(self, key: str, message: str) -> None:
        self.error(self.key_lines.get(key), message)

    def build(self, path: str) -> MasterConfig:
        cfg = MasterConfig(filename=path)
        for key in sorted(set(self.raw) - KNOWN_KEYS):
            self.key_error(key, f"unknown BuildmasterConfig key {key!r}")
        cfg.slaves = self.slaves()
        cfg.builders = self.builders(cfg.slaves)
        cfg.schedulers = self.schedulers({b.name for b in cfg.builders})
        self.protocols(cfg)
        self.www(cfg)
        self.database(cfg)
        self.global_settings(cfg)
        self.locks(cfg)
        self.users(cfg)
        self.roles(cfg)
        self.clients(cfg)
        self.web_auth(cfg)
        self.slaveapi(cfg)
        self.cas(cfg)
        self.task_settings(cfg)
        self.queue_settings(cfg)
        self.multi_master_settings(cfg)
        self.mq_settings(cfg)
        self.secrets_providers(cfg)
        self.no_effect_keys()
        cfg.change_sources = self.change_sources()
        cfg.services = self.services()
        self.pb_change_sources(cfg)
        for scheduler in cfg.schedulers:
            for problem in scheduler.cross_check(cfg):
                self.error(scheduler.config_line or self.key_lines.get("schedulers"), problem)
        for builder in cfg.builders:
            for step in builder.factory.steps if isinstance(builder.factory, BuildFactory) else []:
                for problem in getattr(step, "cross_check", lambda _: [])(cfg):
                    self.error(step.config_line or builder.config_line, problem)
        if cfg.www_port and _port_number(cfg.www_port) == _port_number(cfg.pb_port):
            self.key_error("www", f"www port {cfg.www_port} is also the PB port")
        slaveapi_port = _port_number(cfg.slaveapi.port)
        if slaveapi_port is not None and slaveapi_port in (_port_number(cfg.pb_port),
                                                           _port_number(cfg.www_port)):
            self.key_error("slaveapi", f"SlaveAPI port {cfg.slaveapi.port} is also the PB or www port")
        cfg.warnings[:0] = _unique(self.warnings)
        if self.errors:
            raise ConfigErrors(_unique(self.errors), cfg.warnings)
        return cfg

    def no_effect_keys(self) -> None:
        """A warning for each key accepted without effect."""
        for key, why in NO_EFFECT_KEYS.items():
            if self.raw.get(key) not in (None, [], {}, ()):
                self.key_warning(key, f"c[{key!r}] has no effect: {why}")
        configurators = self.raw.get("configurators")
        for configurator in configurators if isinstance(configurators, list | tuple) else []:
            line = getattr(configurator, "config_line", None) or self.key_lines.get("configurators")
            for arg, why in getattr(configurator, "no_effect_args", dict)().items():
                self.warning(line, f"{type(configurator).__name__} argument {arg!r} has no effect: {why}")
        www = self.raw.get("www")
        for key in sorted(www) if isinstance(www, dict) else []:
            if key in WWW_NO_EFFECT_KEYS:
                if www[key] not in (None, [], {}, ()):
                    self.key_warning("www", f"c['www'][{key!r}] has no effect: {WWW_NO_EFFECT_KEYS[key]}")
            elif key not in WWW_KEYS:
                self.key_error("www", f"unknown c['www'] key {key!r}")

    def key_warning(self, key: str, message: str) -> None:
        self.warning(self.key_lines.get(key), message)

    def listed(self, key: str, alias: str | None = None) -> tuple[str, list]:
        used = key if key in self.raw or alias not in self.raw else alias
        value = self.raw.get(used, [])
        if not isinstance(value, list | tuple):
            self.key_error(used, f"c[{used!r}] must be a list")
            return used, []
        return used, list(value)

    def slaves(self) -> dict[str, SlaveConfig]:
        key, items = self.listed("slaves", "workers")
        slaves: dict[str, SlaveConfig] = {}
        for item in items:
            if not isinstance(item, SlaveConfig):
                kind = "Worker" if key == "workers" else "BuildSlave"
                self.key_error(key, f"c[{key!r}] holds {item!r}, not a {kind}")
                continue
            line = item.config_line or self.key_lines.get(key)
            self.unknown_args(item, line, item.kind)
            for problem in item.config_problems():
                self.error(line, problem)
            if item.notify_on_missing:
                self.warning(line, f"{item.kind} {item.name!r}: notify_on_missing: the master marks the "
                                   "slave missing after missing_timeout (status, API, log, an event); "
                                   "only a reporter with reporters.WorkerMissingGenerator in "
                                   "c['services'] mails it (reporters.MailNotifier has one by default)")
            for arg in item.no_effect_args:
                self.warning(line, f"{item.kind} argument {arg!r} has no effect in buildfarm: "
                                   f"{item.NO_EFFECT_ARGS[arg]}")
            if not isinstance(item.name, str) or not item.name:
                self.error(line, f"slave name must be a non-empty string, not {item.name!r}")
            elif item.name in slaves:
                self.error(line, f"duplicate slave name {item.name!r}")
            elif not item.local and (not isinstance(item.password, str) or not item.password):
                self.error(line, f"slave {item.name!r} needs a non-empty string password")
            else:
                slaves[item.name] = item
        return slaves

    def unknown_args(self, item, line: int | None, kind: str) -> None:
        for arg in item.unknown_args:
            self.error(line, f"{kind} got an unknown argument {arg!r}")

    def builders(self, slaves: dict[str, SlaveConfig]) -> list[BuilderConfig]:
        _, items = self.listed("builders")
        builders: list[BuilderConfig] = []
        names: set[str] = set()
        builddirs: set[str] = set()
        for item in items:
            if not isinstance(item, BuilderConfig):
                self.key_error("builders", f"c['builders'] holds {item!r}, not a BuilderConfig")
                continue
            line = item.config_line or self.key_lines.get("builders")
            self.unknown_args(item, line, "BuilderConfig")
            if not isinstance(item.name, str) or not item.name:
                self.error(line, f"builder name must be a non-empty string, not {item.name!r}")
                continue
            if item.name in names:
                self.error(line, f"duplicate builder name {item.name!r}")
                continue
            if item.builddir in builddirs:
                self.error(line, f"builder {item.name!r} shares builddir {item.builddir!r}")
            if not item.slavenames:
                self.error(line, f"builder {item.name!r} names no slaves")
            for slavename in [] if self.failed_keys & {"slaves", "workers"} else item.slavenames:
                if slavename not in slaves:
                    self.error(line, f"builder {item.name!r} names unknown slave {slavename!r}")
            self.factory(item, line)
            names.add(item.name)
            builddirs.add(item.builddir)
            builders.append(item)
        return builders

    def factory(self, builder: BuilderConfig, line: int | None) -> None:
        if not isinstance(builder.factory, BuildFactory):
            self.error(line, f"builder {builder.name!r} needs factory=util.BuildFactory(...)")
            return
        if any(builder.factory is seen for seen in self.checked_factories):
            return  # builders sharing a factory share its problems: each is reported once
        self.checked_factories.append(builder.factory)
        for step in builder.factory.steps:
            if not isinstance(step, BuildStep):
                where = getattr(step, "config_line", None) or builder.factory.config_line or line
                self.error(where, f"builder {builder.name!r} has {step!r}, not a build step")
            else:
                for problem in step.config_problems():
                    self.error(step.config_line or line, problem)

    def schedulers(self, builder_names: set[str]) -> list[Scheduler]:
        _, items = self.listed("schedulers")
        schedulers: list[Scheduler] = []
        names: set[str] = set()
        for item in items:
            if not isinstance(item, Scheduler):
                self.key_error("schedulers", f"c['schedulers'] holds {item!r}, not a scheduler")
                continue
            line = item.config_line or self.key_lines.get("schedulers")
            if item.name in names:
                self.error(line, f"duplicate scheduler name {item.name!r}")
            if isinstance(item.builderNames, list | tuple):
                # Taken now, not at construction: master.cfg may fill the list after.
                item.builderNames = list(item.builderNames)
            for name in item.builderNames if isinstance(item.builderNames, list) else []:
                if name not in builder_names and "builders" not in self.failed_keys:
                    self.error(line, f"scheduler {item.name!r} names unknown builder {name!r}")
            try:
                problems = item.config_problems()
            except Exception as e:  # a user's subclass (a custom force parameter) failed
                problems = [f"scheduler {item.name!r}: {type(e).__name__}: {e}"]
            for problem in problems:
                self.error(line, problem)
            if isinstance(item, ForceScheduler):
                self.force_arguments_without_effect(item, line)
            names.add(item.name)
            schedulers.append(item)
        return schedulers

    def change_sources(self) -> list:
        """c['change_source'] (one source or a list): Twisted services, uniquely named; a
        poller's arguments are checked, and those without effect warned about."""
        sources = self.raw.get("change_source", [])
        sources = list(sources) if isinstance(sources, list | tuple) else [sources]
        kept, names = [], set()
        for source in sources:
            if not IService.providedBy(source):
                self.key_error("change_source", f"c['change_source'] holds {source!r}, not a change source")
                continue
            line = getattr(source, "config_line", None) or self.key_lines.get("change_source")
            for problem in getattr(source, "config_problems", list)():
                self.error(line, problem)
            for arg in getattr(source, "no_effect_args", list)():
                self.warning(line, f"{type(source).__name__} {source.name!r}: argument {arg!r} has no "
                                   "effect in buildfarm")
            name = getattr(source, "name", None)
            if name is not None and name in names:
                self.error(line, f"two change sources are named {name!r}: give each a distinct name=")
            names.add(name)
            kept.append(source)
        return kept

    def services(self) -> list:
        """``c['services']``: any Twisted service (Buildbot allows arbitrary ones), started as a
        child of the master; at most one of each name.  Buildbot's ``HttpStatusPush`` and its
        generators and formatters are provided (master/reporters/); its other reporters are
        not: using one fails at its line as ``not supported by buildfarm``."""
        key, items = self.listed("services")
        kept, names = [], set()
        for item in items:
            if not IService.providedBy(item):
                self.key_error(key, f"c['services'] holds {item!r}, not a Twisted service (IService)")
                continue
            name = getattr(item, "name", None)
            if name is not None and name in names:
                self.key_error(key, f"two services in c['services'] are named {name!r}")
                continue
            names.add(name)
            kept.append(item)
        return kept

    def force_arguments_without_effect(self, scheduler: ForceScheduler, line: int | None) -> None:
        """Buildbot's layout arguments of force parameters (``size``, ``cols``, ...) and
        ``username`` are accepted without effect: a warning each."""
        if getattr(scheduler, "username", None) is not None:
            self.warning(line, f"ForceScheduler {scheduler.name!r}: argument 'username' has no effect: "
                               "the user is the one who logged in")
        parameters = list(scheduler.parameters) if isinstance(scheduler.parameters, list | tuple) else []
        codebases = [c for c in scheduler.codebase_parameters() if isinstance(c, BaseParameter)]
        parameters += codebases + [f for c in codebases for f in c.fields]
        for parameter in [*parameters, scheduler.reason]:
            for arg in parameter.ignored if isinstance(parameter, BaseParameter) else []:
                self.warning(line, f"ForceScheduler {scheduler.name!r}: parameter {parameter.name!r}: "
                                   f"argument {arg!r} has no effect: buildfarm's force form has its "
                                   "own layout")

    def global_settings(self, cfg: MasterConfig) -> None:
        properties = self.raw.get("properties", {})
        if not isinstance(properties, dict) or not all(isinstance(k, str) for k in properties):
            self.key_error("properties", "c['properties'] must map property names to values")
        else:
            cfg.properties = dict(properties)
        collapse = self.raw.get("collapseRequests", True)
        if not isinstance(collapse, bool) and not callable(collapse):
            self.key_error("collapseRequests", "c['collapseRequests'] must be True, False or a function")
        else:
            cfg.collapse_requests = collapse
        multi = self.raw.get("multiMaster", False)
        if not isinstance(multi, bool):
            self.key_error("multiMaster", "c['multiMaster'] must be True or False")
        else:
            cfg.multi_master = multi
        changes = self.raw.get("changes", {})
        secret = changes.get("secret") if isinstance(changes, dict) else None
        if not isinstance(changes, dict) or (secret is not None and not isinstance(secret, str)):
            self.key_error("changes", "c['changes'] must be like {'secret': '...'}")
        else:
            cfg.change_secret = secret
        self.buildbot_url(cfg)
        self.title(cfg)

    def title(self, cfg: MasterConfig) -> None:
        """``c['title']`` (text) and ``c['titleURL']``: an http(s) URL or a path of this site,
        where the title in every page's header links (no ``javascript:`` or other schemes)."""
        title = self.raw.get("title")
        if title is not None and not isinstance(title, str):
            self.key_error("title", f"c['title'] must be a string, not {title!r}")
        elif title is not None:
            cfg.title = title
        url = self.raw.get("titleURL")
        if url in (None, ""):
            return
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or not (parts.scheme in ("http", "https") and parts.netloc
                                 or (not parts.scheme and not parts.netloc and url.startswith("/"))):
            self.key_error("titleURL", f"c['titleURL'] must be an http:// or https:// URL or a path "
                                       f"starting with '/', not {url!r}")
            return
        cfg.title_url = url

    def buildbot_url(self, cfg: MasterConfig) -> None:
        """``c['buildbotURL']``, an http(s) URL (a '/' is added at its end, as buildbot does)."""
        url = self.raw.get("buildbotURL")
        if url is None:
            return
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            self.key_error("buildbotURL", f"c['buildbotURL'] must be an http:// or https:// URL, not {url!r}")
            return
        cfg.buildbot_url = url if url.endswith("/") else url + "/"

    def locks(self, cfg: MasterConfig) -> None:
        """Lock arguments, undeclared locks (when c['locks'] declares them) and name clashes."""
        declared_key, declared = self.listed("locks")
        declared_ids = {id(lock) for lock in declared}
        by_name: dict[str, BaseLock] = {}
        for lock in declared:
            if not isinstance(lock, BaseLock):
                self.key_error(declared_key, f"c['locks'] holds {lock!r}, not a MasterLock or SlaveLock")
        uses = [(b.config_line, b.locks) for b in cfg.builders]
        uses += [(s.config_line, s.locks) for b in cfg.builders if isinstance(b.factory, BuildFactory)
                 for s in b.factory.steps if isinstance(s, BuildStep)]
        for line, items in uses:
            for item in items:
                lock = item.lock if isinstance(item, LockAccess) else item
                if not isinstance(lock, BaseLock):
                    self.error(line, f"{item!r} is not a lock (use util.MasterLock or util.SlaveLock)")
                    continue
                for problem in lock.config_problems():
                    self.error(lock.config_line or line, problem)
                if isinstance(item, LockAccess) and item.mode not in ACCESS_MODES:
                    self.error(line, f"lock {lock.name!r}: access must be 'counting' or 'exclusive', "
                                     f"not {item.mode!r}")
                if "locks" in self.raw and id(lock) not in declared_ids:
                    self.error(line, f"lock {lock.name!r} is used but not declared in c['locks']")
                same = by_name.setdefault(lock.name, lock)
                if same is not lock and (type(same), same.maxCount) != (type(lock), lock.maxCount):
                    self.error(lock.config_line or line, f"lock {lock.name!r} is defined twice differently")

    def protocols(self, cfg: MasterConfig) -> None:
        protocols = self.raw.get("protocols", {})
        legacy = self.raw.get("buildslavePortnum", self.raw.get("slavePortnum"))
        if legacy is not None and not protocols:
            protocols = {"pb": {"port": legacy}}
        if not isinstance(protocols, dict) or not isinstance(protocols.get("pb", {}), dict):
            self.key_error("protocols", "c['protocols'] must be like {'pb': {'port': 9989}}")
            return
        for name in sorted(set(protocols) - {"pb"}):
            self.key_error("protocols", f"unknown protocol {name!r} (only 'pb' is supported)")
        pb = protocols.get("pb", {})
        port = self.endpoint("protocols", "PB port", pb.get("port", DEFAULT_PB_PORT))
        if port:
            cfg.pb_port = port
        cfg.listen_backlog = self.positive("protocols", "backlog", pb, DEFAULT_LISTEN_BACKLOG)
        cfg.ping_interval = self.positive("protocols", "ping_interval", pb, cfg.ping_interval)
        cfg.ping_timeout = self.positive("protocols", "ping_timeout", pb, cfg.ping_timeout)
        defaults = PBLimits()
        cfg.pb_limits = PBLimits(
            login_timeout=self.positive("protocols", "login_timeout", pb, defaults.login_timeout),
            **{name: self.positive_int("protocols", name, pb, getattr(defaults, name))
               for name in ("max_pending_logins", "max_message_bytes", "max_message_items")},
        )

    def positive(self, key: str, name: str, section: dict, default):
        value = section.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.key_error(key, f"{name} must be a positive number, not {value!r}")
            return default
        return value

    def positive_int(self, key: str, name: str, section: dict, default: int) -> int:
        value = section.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.key_error(key, f"{name} must be a positive whole number, not {value!r}")
            return default
        return value

    def www(self, cfg: MasterConfig) -> None:
        www = self.raw.get("www", {"port": DEFAULT_WWW_PORT})
        if not isinstance(www, dict):
            self.key_error("www", "c['www'] must be like {'port': 8010}")
            return
        anonymous = www.get("allow_anonymous_read", True)
        if not isinstance(anonymous, bool):
            self.key_error("www", "c['www']['allow_anonymous_read'] must be True or False, "
                                  f"not {anonymous!r}")
        else:
            cfg.www_allow_anonymous_read = anonymous
        self.www_limits(cfg, www)
        self.anonymous_scopes(cfg, www)
        self.change_hook_dialects(cfg, www)
        if www.get("port") is None:
            cfg.www_port = None
            return
        cfg.www_port = self.endpoint("www", "www port", www["port"])

    def change_hook_dialects(self, cfg: MasterConfig, www: dict) -> None:
        """``c['www']['change_hook_dialects']``: the webhooks served at /change_hook/<dialect>."""
        if www.get("change_hook_dialects") in (None, {}):
            return
        dialects, errors = validate_dialects(www["change_hook_dialects"])
        for error in errors:
            self.key_error("www", error)
        cfg.change_hook_dialects = dialects
        for name in unauthenticated_dialects(dialects):
            self.key_warning("www", f"change hook {name!r} has no secret: anyone who reaches the web port "
                                    "can add changes through /change_hook/" + name)

    def pb_change_sources(self, cfg: MasterConfig) -> None:
        """The PBChangeSources of ``cfg.change_sources``: they log in on the slaves' PB port, or
        on a port of their own that no other port of the master takes."""
        taken = {_port_number(cfg.www_port), _port_number(cfg.slaveapi.port)} - {None}
        for source in cfg.change_sources:
            if isinstance(source, PBChangeSource):
                for problem in source.problems(cfg.pb_port, cfg.slaves):
                    self.key_error("change_source", problem)
                own = source.own_port(cfg.pb_port)
                if own is not None and _port_number(own) in taken:
                    self.key_error("change_source", f"{source.name}: port {source.port!r} is also the www or "
                                                    "SlaveAPI port")

    def www_limits(self, cfg: MasterConfig, www: dict) -> None:
        """``idle_timeout``, ``header_timeout``, ``body_timeout`` (seconds) and
        ``max_event_streams`` of c['www'] (every HTTP port; docs/security.md)."""
        given = {}
        for key, (field_name, integral) in LIMIT_KEYS.items():
            if key not in www:
                continue
            value = www[key]
            if isinstance(value, bool) or not isinstance(value, int if integral else int | float) \
                    or not math.isfinite(value) or value <= 0:
                kind = "a positive integer" if integral else "a positive number of seconds"
                self.key_error("www", f"c['www']['{key}'] must be {kind}, not {value!r}")
                continue
            given[field_name] = value
        cfg.www_limits = HTTPLimits(**given)

    def anonymous_scopes(self, cfg: MasterConfig, www: dict) -> None:
        """``c['www']['anonymous_scopes']``: by default the read scopes when anonymous reading
        is allowed, none otherwise; a warning when the list grants more than reading."""
        if "anonymous_scopes" not in www:
            cfg.www_anonymous_scopes = READ_SCOPES if cfg.www_allow_anonymous_read else ()
            return
        scopes = www["anonymous_scopes"]
        if not isinstance(scopes, list | tuple) or not all(isinstance(s, str) and s for s in scopes):
            self.key_error("www", "c['www']['anonymous_scopes'] must be a list of scopes like 'builds:read'")
            return
        cfg.www_anonymous_scopes = tuple(scopes)
        for scope in scopes:
            if not is_plain_read_scope(scope):
                self.key_warning("www", f"c['www']['anonymous_scopes'] grants {scope!r} to anyone "
                                        "without credentials: it is more than reading")

    def users(self, cfg: MasterConfig) -> None:
        """``c['users']``: the accounts of every HTTP surface (master/auth/)."""
        cfg.users, problems = validate_users(self.raw.get("users", []), os.path.dirname(cfg.filename))
        for problem in problems:
            self.key_error("users", problem)

    def roles(self, cfg: MasterConfig) -> None:
        """``c['roles']``: Taskcluster roles (master/auth/roles.py)."""
        cfg.roles, problems = validate_roles(self.raw.get("roles"))
        for problem in problems:
            self.key_error("roles", problem)

    def clients(self, cfg: MasterConfig) -> None:
        """``c['clients']`` (Hawk credentials, master/auth/clients.py) and ``c['clients_key']``."""
        basedir = os.path.dirname(cfg.filename)
        cfg.clients, problems = validate_clients(self.raw.get("clients", []), basedir)
        for problem in problems:
            self.key_error("clients", problem)
        if self.raw.get("clients_key") is not None:
            try:
                cfg.clients_key = resolve_secret(self.raw["clients_key"], basedir, "c['clients_key']")
            except SecretError as e:
                self.key_error("clients_key", str(e))

    def web_auth(self, cfg: MasterConfig) -> None:
        """``c['www']['auth']`` and ``['authz']``: their users join ``cfg.users`` with the scopes
        Authz grants (master/auth/webusers.py); without ``anonymous_scopes``, anonymous callers
        read only if Authz lets a caller without roles read."""
        www = self.raw.get("www")
        if not isinstance(www, dict):
            return
        web, errors, cfg.auth_explanation = configure_web_auth(
            www, cfg.users, [b.name for b in cfg.builders], os.path.dirname(cfg.filename))
        for error in errors:
            self.key_error("www", error)
        cfg.web_auth = web
        cfg.users = cfg.users + web.accounts
        if "anonymous_scopes" not in www and not anonymous_may_read(web):
            cfg.www_anonymous_scopes = ()

    def slaveapi(self, cfg: MasterConfig) -> None:
        """``c['slaveapi']``: the SlaveAPI's port and inventory."""
        cfg.slaveapi, problems = validate_slaveapi_config(self.raw, os.path.dirname(cfg.filename))
        for key, message in problems:
            self.key_error(key, message)

    def cas(self, cfg: MasterConfig) -> None:
        """``c['cas']``: the content-addressed store (master/cas/config.py)."""
        cfg.cas, problems = validate_cas_config(self.raw, os.path.dirname(cfg.filename))
        for key, message in problems:
            self.key_error(key, message)
        # several masters serve one store (a master without c['cas'] keeps the file default:
        # it serves no CAS that the others share, as before)
        if cfg.multi_master and "cas" in self.raw and not problems:
            if cfg.cas.backend == "file":
                self.key_error("cas", MULTI_MASTER_CAS_NEEDS_S3)
            elif not cfg.cas.secret_is_set:
                self.key_error("cas", MULTI_MASTER_CAS_NEEDS_SECRET)

    def task_settings(self, cfg: MasterConfig) -> None:
        """``c['tasks']``: the Swarming API's limits (master/tasks/settings.py)."""
        cfg.tasks, problems = validate_tasks_config(self.raw)
        for key, message in problems:
            self.key_error(key, message)

    def queue_settings(self, cfg: MasterConfig) -> None:
        """``c['queue']``: the task queues PB slaves serve (master/queue/settings.py)."""
        cfg.queue, problems = validate_queue_config(self.raw)
        for key, message in problems:
            self.key_error(key, message)

    def multi_master_settings(self, cfg: MasterConfig) -> None:
        """``c['multiMasterSettings']``: heartbeats and the dead-after time (master/cluster/settings.py)."""
        cfg.multi_master_settings, problems = validate_multimaster_config(self.raw)
        for key, message in problems:
            self.key_error(key, message)
    def mq_settings(self, cfg: MasterConfig) -> None:
        """``c['mq']``: the event bus (master/mq/settings.py); and several masters need a way
        to wake each other: the broker, or PostgreSQL's LISTEN/NOTIFY."""
        cfg.mq, problems = validate_mq_config(self.raw)
        for key, message in problems:
            self.key_error(key, message)
        on_postgresql = make_url(cfg.db_url).get_backend_name() == "postgresql"
        if cfg.multi_master and not cfg.mq.amqp and not on_postgresql:
            self.key_error("multiMaster", MULTI_MASTER_NEEDS_WAKEUPS)
        wakeups = cfg.multi_master_settings.wakeups
        if wakeups == WAKEUPS_BROKER and not cfg.mq.amqp:
            self.key_error("multiMasterSettings", "c['multiMasterSettings']['wakeups'] = 'broker' needs "
                                                  "c['mq'] = {'type': 'amqp', ...}")
        if wakeups == WAKEUPS_POSTGRESQL and not on_postgresql:
            self.key_error("multiMasterSettings", "c['multiMasterSettings']['wakeups'] = 'postgresql' "
                                                  "needs a PostgreSQL db_url")

    def endpoint(self, key: str, what: str, port) -> str | None:
        """A strports description for a port number or description, or None (an error)."""
        if isinstance(port, bool):
            port = None
        if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
            if not 0 < int(port) < 65536:
                self.key_error(key, f"bad {what} {port!r}: must be between 1 and 65535")
                return None
            return f"tcp:{int(port)}"
        if isinstance(port, str) and port.split(":", 1)[0] in ("tcp", "tcp6", "ssl", "unix"):
            return port
        self.key_error(key, f"bad {what} {port!r}: give a number or an endpoint like 'tcp:9989'")
        return None

    def secrets_providers(self, cfg: MasterConfig) -> None:
        """c['secretsProviders']: a list of providers (secrets.SecretInAFile, ...), each
        checked at the line that made it."""
        key, providers = self.listed("secretsProviders")
        for provider in providers:
            line = getattr(provider, "config_line", None) or self.key_lines.get(key)
            if not ISecretProvider.providedBy(provider):
                self.error(line, f"c['secretsProviders'] holds {provider!r}, not a secrets provider "
                                 "(expected secrets.SecretInAFile(dirname) or secrets.SecretInPass(...))")
                continue
            for problem in provider.config_problems():
                self.error(line, problem)
        cfg.secrets_providers = [p for p in providers if ISecretProvider.providedBy(p)]

    def database(self, cfg: MasterConfig) -> None:
        db = self.raw.get("db", {})
        url = self.raw.get("db_url") or (db.get("db_url") if isinstance(db, dict) else None)
        if url is None:
            return
        try:
            make_url(url)
        except (ArgumentError, TypeError, ValueError) as e:
            self.key_error("db", f"bad db_url {url!r}: {e}")
            return
        cfg.db_url = url


def _at(filename: str, line: int | None, message: str) -> ConfigError:
    """A problem at ``line`` of master.cfg, or of the helper module a ``ConfigLine`` names."""
    return ConfigError(getattr(line, "filename", None) or filename, line and int(line), message)


def _unique(items: list) -> list:
    """``items`` without repeats, in order (builders sharing a factory share its problems)."""
    seen: list = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _port_number(description: str | None) -> int | None:
    if not description:
        return None
    for part in description.split(":")[1:]:
        if part.isdigit():
            return int(part)
        if part.startswith("port="):
            return int(part[5:]) if part[5:].isdigit() else None
    return None
