"""Runs from a hash: the ``RunIsolated`` and ``IsolateArchive`` steps (docs/cas.md, "Runs from
a hash").

``IsolateArchive(path=..., namespace=...)`` archives a directory of the slave's build to the
master's content-addressed store (the slave's ``isolate_archive`` command) and sets its hash as
a property (``isolated`` by default).  ``RunIsolated(isolated=util.Property('isolated'), ...)``
runs the command of that tree on a slave (``run_isolated``): the tree is fetched into the slave's
cache, mapped into a fresh directory, run under the hard timeout, the I/O timeout and the grace
period, and the outputs the command wrote into ``${ISOLATED_OUTDIR}`` come back as a hash set as
a property (``isolated_output`` by default).

Each run hands the slave a build grant (master/cas/grants.py): ``cas:read`` (and ``cas:write``
for outputs or an archive) on the step's namespace only, valid for the step's timeouts plus
`GRANT_MARGIN_S`.  The build's redactor learns it, so it is shown as ``<cas-grant>`` if a log
ever carried it.

The server the slave talks to: ``server=`` if given; else ``c['buildbotURL']`` unless it names
a loopback host; else ``http://<the master's address on the slave's PB connection>:<the www
port>``, which reaches the master from a slave on another host whenever the web port listens
on that address too.
"""

import ipaddress
import re
from urllib.parse import urlsplit

from buildfarm.common.results import FAILURE, SUCCESS
from buildfarm.master.cas import grants
from buildfarm.master.cas.namespaces import BadNamespace, parse_namespace
from buildfarm.master.process.buildstep import BuildStep, StepContext
from buildfarm.master.process.properties import Renderable

DEFAULT_NAMESPACE = "default-gzip"
DEFAULT_HARD_TIMEOUT_S = 3600
DEFAULT_IO_TIMEOUT_S = 1200
DEFAULT_GRACE_PERIOD_S = 30
MAX_TIMEOUT_S = 3 * 24 * 3600  # Swarming's upper bound of every run limit
GRANT_MARGIN_S = 3600  # fetching and archiving are outside the hard timeout
RUN_COMMAND = "run_isolated"
ARCHIVE_COMMAND = "isolate_archive"
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
STATS_LOG = "isolate"
STAT_LINES = (("checked", "items checked"), ("hits", "hits"), ("misses", "misses"),
              ("downloaded", "items downloaded"), ("downloaded_bytes", "bytes downloaded"),
              ("uploaded", "items uploaded"), ("uploaded_bytes", "bytes uploaded"),
              ("seconds", "seconds"))


class NoServer(Exception):
    """The step cannot tell the slave where the master's Isolate API is."""


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this host only (a slave elsewhere cannot reach it)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port_number(description: str | None) -> int | None:
    """The TCP port of a Twisted endpoint description (``tcp:8010``, ``tcp:port=8010:...``)."""
    for part in (description or "").split(":")[1:]:
        if part.isdigit():
            return int(part)
        if part.startswith("port=") and part[5:].isdigit():
            return int(part[5:])
    return None


def master_address_seen_by(slavebuilder) -> str | None:
    """The master's own address on the slave's PB connection (what the slave reached)."""
    return master_address_on(slavebuilder.remote)


def master_address_on(remote) -> str | None:
    """The master's own address on the PB connection of ``remote`` (a slave's reference)."""
    broker = getattr(remote, "broker", None)
    transport = getattr(broker, "transport", None)
    if transport is None:
        return None
    host = getattr(transport.getHost(), "host", None)
    if not host:
        return None
    return f"[{host}]" if ":" in host else host


def server_for(step_server: str | None, ctx: StepContext) -> str:
    """The Isolate server's URL for this run (see the module docstring)."""
    if step_server:
        return step_server.rstrip("/")
    config = ctx.master.config
    if config.buildbot_url and not is_loopback_url(config.buildbot_url):
        return config.buildbot_url.rstrip("/")
    port = port_number(config.www_port)
    host = master_address_seen_by(ctx.build.slavebuilder)
    if port is None or host is None:
        raise NoServer("the step has no server= and the master has no web port (or c['buildbotURL']) "
                       "a slave could reach")
    return f"http://{host}:{port}"


def _timeout_problem(step: str, name: str, value, allow_none: bool) -> str | None:
    if isinstance(value, Renderable) or (value is None and allow_none):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_TIMEOUT_S:
        return f"{step} {name} must be a number of seconds from 0 to {MAX_TIMEOUT_S}, not {value!r}"
    return None


def _is_list_of(value, kinds) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(item, kinds) for item in value)


def _text_problem(step: str, name: str, value, required: bool = True) -> str | None:
    if isinstance(value, Renderable) or (value is None and not required):
        return None
    if not isinstance(value, str) or not value:
        return f"{step} {name} must be a non-empty string, not {value!r}"
    return None


class _IsolateStep(BuildStep):
    """What both steps share: the namespace, the server, the grant, the statistics log."""

    haltOnFailure = True  # noqa: N815 - Buildbot's name
    remote_command = ""
    grant_kinds: tuple[str, ...] = ("read", "write")

    def __init__(self, namespace=DEFAULT_NAMESPACE, server=None, **kwargs):
        super().__init__(**kwargs)
        self.namespace = namespace
        self.server = server

    def config_problems(self) -> list[str]:
        step = type(self).__name__
        problems = super().config_problems()
        if isinstance(self.namespace, str):
            try:
                parse_namespace(self.namespace)
            except BadNamespace as e:
                problems.append(f"{step} namespace: {e}")
        elif not isinstance(self.namespace, Renderable):
            problems.append(f"{step} namespace must be a string like 'default-gzip', not {self.namespace!r}")
        if isinstance(self.server, str):
            parts = urlsplit(self.server)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                problems.append(f"{step} server must be an http:// or https:// URL, not {self.server!r}")
        elif self.server is not None and not isinstance(self.server, Renderable):
            problems.append(f"{step} server must be a URL, not {self.server!r}")
        return problems

    def grant_lifetime(self) -> float:
        return GRANT_MARGIN_S

    def credentials(self, ctx: StepContext) -> str:
        """The ``Authorization`` value of a grant for this run, known to the build's redactor."""
        holder = f"build {ctx.build.number} step {self.name}"
        token = grants.mint(ctx.master.config.cas.upload_secret, self.namespace, self.grant_kinds,
                            self.grant_lifetime(), ctx.clock, holder)
        ctx.properties.redactor.add(token, grants.REDACTION_NAME)
        return f"Bearer {token}"

    def common_args(self, ctx: StepContext) -> dict:
        return {"namespace": self.namespace, "server": server_for(self.server, ctx),
                "auth_header": self.credentials(ctx)}

    async def start(self, ctx: StepContext, args: dict):
        """Run the command (after checking what can only be checked now); ``(outcome, log)``
        or ``(None, log)`` when the step could not start it (the log says why)."""
        log = await ctx.add_log("stdio")
        problem = self.run_problem(ctx)
        if problem is None:
            try:
                args = {**self.common_args(ctx), **args}
            except NoServer as e:
                problem = str(e)
        if problem is not None:
            log.add_stderr(f"{problem}\n")
            return None, log
        return await ctx.run_command(self.remote_command, args, log), log

    def run_problem(self, ctx: StepContext) -> str | None:
        """What makes this run impossible once the properties are rendered (None: nothing)."""
        step = type(self).__name__
        try:
            parse_namespace(self.namespace)
        except BadNamespace as e:
            return f"{step} namespace: {e}"
        if ctx.command_version(self.remote_command) is None:
            return (f"this slave has no {self.remote_command!r} command (it is older than the "
                    "run-from-a-hash steps)")
        return None

    async def write_stats(self, ctx: StepContext, stats) -> None:
        """The statistics the slave reported, in the step's ``isolate`` log."""
        if not isinstance(stats, dict) or not stats:
            return
        log = await ctx.add_log(STATS_LOG)
        for phase in ("download", "upload"):
            figures = stats.get(phase)
            if not isinstance(figures, dict):
                continue
            shown = ", ".join(f"{figures[key]} {label}" for key, label in STAT_LINES if key in figures)
            log.add_stdout(f"{phase}: {shown}\n")


class RunIsolated(_IsolateStep):
    """``steps.RunIsolated(isolated=util.Property('isolated'), namespace='default-gzip')``: run
    the command of an ``.isolated`` tree on the slave; its outputs' hash becomes the property
    ``output_property``."""

    default_name = "run_isolated"
    remote_command = RUN_COMMAND  # (``command`` is the tree's command override)
    renderables = BuildStep.renderables + ("isolated", "namespace", "command", "extra_args", "env",
                                           "server", "hard_timeout", "io_timeout", "grace_period")

    def __init__(self, isolated=None, namespace=DEFAULT_NAMESPACE, command=None, extra_args=None, env=None,
                 server=None, hard_timeout=DEFAULT_HARD_TIMEOUT_S, io_timeout=DEFAULT_IO_TIMEOUT_S,
                 grace_period=DEFAULT_GRACE_PERIOD_S, output_property="isolated_output",
                 cache_policies=None, **kwargs):
        super().__init__(namespace=namespace, server=server, **kwargs)
        self.isolated = isolated
        self.command = command
        self.extra_args = extra_args
        self.env = env
        self.hard_timeout = hard_timeout
        self.io_timeout = io_timeout
        self.grace_period = grace_period
        self.output_property = output_property
        self.cache_policies = cache_policies

    def config_problems(self) -> list[str]:
        step = "RunIsolated"
        problems = super().config_problems()
        checks = [
            _text_problem(step, "isolated (the tree's hash, e.g. util.Property('isolated'))", self.isolated),
            _timeout_problem(step, "hard_timeout", self.hard_timeout, allow_none=False),
            _timeout_problem(step, "io_timeout", self.io_timeout, allow_none=True),
            _timeout_problem(step, "grace_period", self.grace_period, allow_none=False),
            _text_problem(step, "output_property", self.output_property),
        ]
        problems.extend(p for p in checks if p)
        for name in ("command", "extra_args"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Renderable) and (
                    not _is_list_of(value, str | Renderable) or (name == "command" and not value)):
                problems.append(f"{step} {name} must be a list of strings, not {value!r}")
        env = self.env
        if env is not None and not isinstance(env, Renderable) and (not isinstance(env, dict) or not all(
                isinstance(k, str) and isinstance(v, str | list | Renderable | None) for k, v in env.items())
        ):
            problems.append(f"{step} env must map names to strings, lists or None")
        if self.cache_policies is not None and not isinstance(self.cache_policies, dict):
            problems.append(f"{step} cache_policies must be a dict like {{'max_cache_size': 10 * 2**30}}")
        return problems

    def grant_lifetime(self) -> float:
        return (self.hard_timeout or 0) + (self.grace_period or 0) + GRANT_MARGIN_S

    def run_problem(self, ctx: StepContext) -> str | None:
        if not isinstance(self.isolated, str) or not self.isolated:
            return f"RunIsolated has no tree to run: isolated rendered to {self.isolated!r}"
        return super().run_problem(ctx)

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        args = {"isolated": self.isolated, "command": list(self.command) if self.command else None,
                "extra_args": list(self.extra_args or []), "env": self.env, "hard_timeout": self.hard_timeout,
                "io_timeout": self.io_timeout, "grace_period": self.grace_period,
                "cache_policies": self.cache_policies}
        outcome, _ = await self.start(ctx, args)
        if outcome is None:
            return FAILURE, f"{self.name} (failure)"
        await self.write_stats(ctx, outcome.get("isolate_stats"))
        output = outcome.get("isolated_output")
        if isinstance(output, str):
            ctx.setProperty(self.output_property, output, self.name)
        if outcome.get("rc") != 0:
            return FAILURE, f"{self.name} (failure)"
        return SUCCESS, self.name


class IsolateArchive(_IsolateStep):
    """``steps.IsolateArchive(path='out/tests', namespace='default-gzip')``: archive a directory
    of the slave's build; its hash becomes the property ``property``."""

    default_name = "isolate_archive"
    remote_command = ARCHIVE_COMMAND
    renderables = BuildStep.renderables + ("path", "namespace", "blacklist", "server", "workdir")

    def __init__(self, path=None, namespace=DEFAULT_NAMESPACE, blacklist=None, property="isolated",  # noqa: A002
                 server=None, workdir="build", **kwargs):
        super().__init__(namespace=namespace, server=server, **kwargs)
        self.path = path
        self.blacklist = blacklist
        self.property = property
        self.workdir = workdir

    def config_problems(self) -> list[str]:
        step = "IsolateArchive"
        problems = super().config_problems()
        checks = [_text_problem(step, "path (a directory of the build, relative to workdir)", self.path),
                  _text_problem(step, "property", self.property),
                  _text_problem(step, "workdir", self.workdir)]
        problems.extend(p for p in checks if p)
        blacklist = self.blacklist
        if blacklist is not None and not isinstance(blacklist, Renderable) \
                and not _is_list_of(blacklist, str):
            problems.append(f"{step} blacklist must be a list of regular expressions, not {blacklist!r}")
        elif isinstance(blacklist, list | tuple):
            for pattern in blacklist:
                try:
                    re.compile(pattern)
                except re.error as e:
                    problems.append(f"IsolateArchive blacklist {pattern!r} is not a regular expression: {e}")
        return problems

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        args = {"workdir": self.workdir, "path": self.path, "blacklist": list(self.blacklist or [])}
        outcome, _ = await self.start(ctx, args)
        if outcome is None:
            return FAILURE, f"{self.name} (failure)"
        await self.write_stats(ctx, outcome.get("isolate_stats"))
        digest = outcome.get("isolated")
        if outcome.get("rc") != 0 or not isinstance(digest, str):
            return FAILURE, f"{self.name} (failure)"
        ctx.setProperty(self.property, digest, self.name)
        return SUCCESS, f"{self.name}: {digest[:12]}"
