"""``buildslave_uptime``: the slave machine's uptime in seconds, ``{"uptime": seconds}``.

Over ssh when the slave's inventory has it (the ssh channel's ``UPTIME``: ``/proc/uptime`` or
``uptime`` on Unix, ``net statistics server`` on Windows).  Otherwise, or when ssh fails and
the slave is attached, through the master's PB connection: ``cat /proc/uptime`` as a real
``shell`` remote command on one of the slave's SlaveBuilders (an idle one first; a busy one
refuses a second command, so the next is tried).
"""

from twisted.internet import defer

from buildfarm.master.pb.remotecommand import OutputOnlyLog, RemoteCommand
from buildfarm.master.slaveapi.actions.base import Action, ActionContext, ActionFailed
from buildfarm.master.slaveapi.actions.shutdown_buildslave import ssh_channel
from buildfarm.master.slaveapi.channels.interfaces import UPTIME, ChannelError
from buildfarm.master.slaveapi.channels.ssh import parse_unix_uptime

UPTIME_COMMAND = ["cat", "/proc/uptime"]
INTERRUPT_DEADLINE_S = 5.0


class CollectedOutput(OutputOnlyLog):
    """A log for a ``RemoteCommand`` that keeps its output in memory."""

    def __init__(self):
        self.stdout: list[str] = []
        self.stderr: list[str] = []

    def add_header(self, text: str) -> None:
        pass

    def add_stdout(self, text: str) -> None:
        self.stdout.append(text)

    def add_stderr(self, text: str) -> None:
        self.stderr.append(text)


def shell_args(command: list[str], timeout_s: float) -> dict:
    """The ``shell`` command's arguments, with every key a 4.x worker requires."""
    return {"workdir": ".", "command": command, "env": {}, "want_stdout": True, "want_stderr": True,
            "logfiles": {}, "timeout": int(timeout_s), "maxTime": int(timeout_s), "sigtermTime": None,
            "interruptSignal": "KILL", "usePTY": False, "logEnviron": False, "initial_stdin": None}


async def run_on_slave(ctx: ActionContext, command: list[str]) -> str:
    """Run ``command`` on the attached slave; its stdout (raise ``ActionFailed`` otherwise)."""
    slave = ctx.attached_slave()
    if slave is None:
        raise ActionFailed(f"no channel: {ctx.slave} is not attached to this master, and it has "
                           "no out-of-band channel")
    refs = _builder_refs_idle_first(ctx, slave)
    if not refs:
        raise ActionFailed(f"{ctx.slave} is attached but serves no builder to run a command on")
    timeout_s = ctx.settings.command_timeout
    for builder, ref in refs:
        ctx.say(f"running {' '.join(command)!r} on {ctx.slave} through its builder {builder}")
        output = CollectedOutput()
        remote = RemoteCommand("shell", shell_args(command, timeout_s), output)
        running = defer.ensureDeferred(remote.run(ref, f"slaveapi-{ctx.requestid}"))
        running.addTimeout(timeout_s, ctx.clock)
        try:
            outcome = await running
        except defer.TimeoutError:
            remote.interrupt("SlaveAPI deadline", ctx.clock, INTERRUPT_DEADLINE_S)
            raise ActionFailed(f"no answer from {ctx.slave} within {timeout_s:g} s") from None
        except Exception as e:
            ctx.say(f"{builder} could not run it: {e}")
            continue
        if outcome.get("rc") != 0:
            raise ActionFailed(f"{' '.join(command)!r} exited with {outcome.get('rc')}: "
                               f"{''.join(output.stderr).strip()[:200]}")
        return "".join(output.stdout)
    raise ActionFailed(f"none of the builders of {ctx.slave} could run the command")


def _builder_refs_idle_first(ctx: ActionContext, slave) -> list[tuple[str, object]]:
    def busy(name: str) -> bool:
        builder = ctx.master.botmaster.builders.get(name)
        slavebuilder = builder.slavebuilders.get(ctx.slave) if builder is not None else None
        return slavebuilder is not None and not slavebuilder.is_available()

    return sorted(slave.remote_builders.items(), key=lambda item: (busy(item[0]), item[0]))


class BuildslaveUptime(Action):
    name = "buildslave_uptime"
    repeatable = True  # a read
    aliases = ("get_uptime",)
    description = "the machine's uptime in seconds (over ssh, else cat /proc/uptime through the master)"

    async def run(self, ctx: ActionContext) -> dict:
        uptime = await uptime_by_ssh(ctx)
        how = "read over ssh"
        if uptime is None:
            how = "read through the master"
            stdout = await run_on_slave(ctx, UPTIME_COMMAND)
            try:
                uptime = int(parse_unix_uptime(stdout))  # the ssh channel's parser: one for both ways
            except ValueError:
                raise ActionFailed(f"cannot read an uptime from {stdout[:100]!r}") from None
        ctx.say(f"{ctx.slave} has been up for {uptime} s ({how})")
        return {"uptime": uptime}


async def uptime_by_ssh(ctx: ActionContext) -> int | None:
    """The uptime over ssh; None when the slave has no ssh, or it failed and the master can
    ask instead (said in the story); ``ActionFailed`` when ssh failed and nothing else can."""
    channel = ssh_channel(ctx, UPTIME)
    if channel is None:
        return None
    try:
        return int(await channel.perform(UPTIME, ctx.location, ctx.say, ctx.clock,
                                          ctx.settings.command_timeout))
    except ChannelError as e:
        if ctx.attached_slave() is None:
            raise ActionFailed(f"the uptime of {ctx.slave} over ssh failed: {e}") from None
        ctx.say(f"the uptime over ssh failed ({e}); asking through the master instead")
        return None
