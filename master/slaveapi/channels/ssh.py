"""``SSHChannel``: run one command on the slave's machine over SSH (twisted.conch).

Inventory settings, ``c['slaveapi']['slaves'][name]['ssh']``:

``username``
    the account to log in as (required).
``key`` / ``key_passphrase``
    a private key file (OpenSSH or PEM; relative to the master's basedir) and its passphrase
    (a secret), or
``password``
    a secret (``{'env': ...}`` / ``{'file': ...}``); one of ``key`` and ``password`` is required.
``host`` / ``port``
    where sshd listens; default the slave's ``ip``, then its ``fqdn``; port 22.
``host_key`` / ``known_hosts`` / ``host_key_check``
    how the server is recognised.  ``host_key`` is its public key (``"ssh-ed25519 AAAA..."``)
    or fingerprint (``"SHA256:..."`` as ``ssh-keygen -l`` prints it, or ``"MD5:aa:bb:..."``).
    Without it the server's key must be in ``known_hosts`` (a file, relative to the master's
    basedir; default ``~/.ssh/known_hosts`` of the master's user; entries may be hashed and
    name ``host`` or ``[host]:port``).  An unknown or changed key is refused, never learnt.
    ``host_key_check: False`` accepts any key (the story says so).
``os``
    ``'unix'`` (default) or ``'windows'`` (commands for ``cmd.exe``).
``basedir``
    the buildslave's basedir on that machine, for ``twistd.log`` and ``buildslave stop``.
``reboot_command``
    default ``sudo /sbin/reboot`` (``shutdown /r /t 0`` on Windows).
``stop_command``
    stops the buildslave; default ``buildslave stop <basedir>``.
``connect_timeout``
    seconds to wait for the TCP connection (default 15); every operation also ends at the
    deadline the action gives.

Operations: ``REBOOT`` (a connection dropped after the command started counts as done),
``UPTIME`` (seconds: ``/proc/uptime`` or ``uptime``; Windows: ``net statistics server``),
``READ_LOG`` (the last ``lines`` lines of ``<basedir>/twistd.log``), ``SHUTDOWN_SLAVE``.
Every failure is a ``ChannelError`` saying what was seen; passwords and passphrases are
never shown.
"""

import os
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta
from struct import unpack

from twisted.conch.client.knownhosts import KnownHostsFile
from twisted.conch.endpoints import AuthenticationFailed, SSHCommandClientEndpoint
from twisted.conch.error import ConchError, HostKeyChanged
from twisted.conch.ssh.keys import BadKeyError, EncryptedKeyError, FingerprintFormats, Key
from twisted.internet import defer, error, protocol, threads
from twisted.python.filepath import FilePath
from zope.interface import implementer

from buildfarm.common.deadline import with_deadline
from buildfarm.master.auth.secret import Secret
from buildfarm.master.slaveapi.channels.interfaces import (
    READ_LOG,
    REBOOT,
    SHUTDOWN_SLAVE,
    UPTIME,
    ChannelError,
    IChannel,
    IChannelHost,
)

SSH_PORT = 22
UNIX, WINDOWS = "unix", "windows"
REBOOT_COMMANDS = {UNIX: "sudo /sbin/reboot", WINDOWS: "shutdown /r /t 0"}
UPTIME_COMMANDS = {UNIX: "cat /proc/uptime 2>/dev/null || uptime", WINDOWS: "net statistics server"}
DEFAULT_LOG_LINES = 100
MAX_LOG_LINES = 100_000
DEFAULT_CONNECT_TIMEOUT_S = 15.0
OUTPUT_LIMIT_BYTES = 4 * 1024 * 1024  # more is cut (a log tail or an uptime is far less)
ERROR_TAIL_CHARS = 300
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
TEXT_SETTINGS = ("key", "host_key", "known_hosts", "basedir", "reboot_command", "stop_command", "date_format")
SETTINGS = frozenset({
    "username", "key", "key_passphrase", "password", "host", "port", "host_key", "known_hosts",
    "host_key_check", "os", "basedir", "reboot_command", "stop_command", "connect_timeout",
    "date_format",
})


# -- settings ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SSHTarget:
    """Where and how to log in, from a slave's ``ssh`` settings (secrets stay ``Secret``)."""

    host: str
    port: int
    username: str
    key: str | None = None
    key_passphrase: Secret | None = None
    password: Secret | None = None
    host_key: str | None = None
    known_hosts: str | None = None
    host_key_check: bool = True
    os: str = UNIX
    basedir: str | None = None
    reboot_command: str | None = None
    stop_command: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    date_format: str | None = None

    @property
    def where(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"


def ssh_target(location, master_basedir: str) -> SSHTarget:
    """The ``SSHTarget`` of ``location``; ``ChannelError`` naming the bad setting otherwise."""
    settings = dict(location.channels.get("ssh") or {})
    unknown = sorted(set(settings) - SETTINGS)
    if unknown:
        raise ChannelError(f"unknown ssh setting(s) {', '.join(map(repr, unknown))} "
                           f"(known: {', '.join(sorted(SETTINGS))})")
    host = settings.get("host") or location.ip or location.fqdn
    if not host or not isinstance(host, str):
        raise ChannelError("no host to ssh to: set ssh 'host', or the slave's 'ip' or 'fqdn'")
    username = settings.get("username")
    if not isinstance(username, str) or not username:
        raise ChannelError("ssh 'username' must be a non-empty string")
    port = settings.get("port", SSH_PORT)
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ChannelError(f"ssh 'port' must be a TCP port number, not {port!r}")
    os_name = settings.get("os", UNIX)
    if os_name not in (UNIX, WINDOWS):
        raise ChannelError(f"ssh 'os' must be 'unix' or 'windows', not {os_name!r}")
    check = settings.get("host_key_check", True)
    if not isinstance(check, bool):
        raise ChannelError(f"ssh 'host_key_check' must be True or False, not {check!r}")
    connect_timeout = settings.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S)
    if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, int | float) \
            or connect_timeout <= 0:
        raise ChannelError(f"ssh 'connect_timeout' must be a positive number, not {connect_timeout!r}")
    for name in TEXT_SETTINGS:
        value = settings.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise ChannelError(f"ssh {name!r} must be a non-empty string")
    for name in ("password", "key_passphrase"):
        value = settings.get(name)
        if value is not None and not isinstance(value, Secret):
            settings[name] = Secret(str(value))
    if not settings.get("key") and settings.get("password") is None:
        raise ChannelError("ssh needs a 'key' file or a 'password'")
    key = settings.get("key")
    known_hosts = settings.get("known_hosts")
    return SSHTarget(
        host=host, port=port, username=username,
        key=os.path.join(master_basedir, os.path.expanduser(key)) if key else None,
        key_passphrase=settings.get("key_passphrase"), password=settings.get("password"),
        host_key=settings.get("host_key"),
        known_hosts=os.path.join(master_basedir, os.path.expanduser(known_hosts)) if known_hosts else None,
        host_key_check=check, os=os_name, basedir=settings.get("basedir"),
        reboot_command=settings.get("reboot_command"), stop_command=settings.get("stop_command"),
        connect_timeout=float(connect_timeout), date_format=settings.get("date_format"),
    )


# -- host keys -----------------------------------------------------------------------------

class HostKeyRefused(Exception):
    """The server's host key is not the one expected."""


def fingerprint_matches(expected: str, key: Key) -> bool:
    """Whether ``expected`` (a public key line, ``SHA256:...`` or ``MD5:aa:..``) is ``key``."""
    expected = expected.strip()
    if expected.startswith(("ssh-", "ecdsa-", "sk-")):
        try:
            return Key.fromString(expected.encode()) == key
        except (BadKeyError, ValueError):
            return False
    kind, _, digest = expected.partition(":")
    if kind.upper() == "SHA256":
        return digest.rstrip("=") == key.fingerprint(FingerprintFormats.SHA256_BASE64).rstrip("=")
    if kind.upper() == "MD5":
        return digest.lower() == key.fingerprint(FingerprintFormats.MD5_HEX)
    return expected.lower() == key.fingerprint(FingerprintFormats.MD5_HEX)  # bare aa:bb:..


def sha256_fingerprint(key: Key) -> str:
    return "SHA256:" + key.fingerprint(FingerprintFormats.SHA256_BASE64).rstrip("=")


class HostKeyCheck(KnownHostsFile):
    """The ``knownHosts`` the endpoint asks: our policy, never a prompt, never a write.

    ``entries`` are the known_hosts entries read beforehand (off the reactor thread)."""

    def __init__(self, target: SSHTarget, entries: list | None, say):
        super().__init__(None)
        self.target = target
        self.entries = entries
        self.say = say

    def verifyHostKey(self, ui, hostname: bytes, ip: bytes, key: Key) -> defer.Deferred:  # noqa: N802
        try:
            self._verify(key)
        except HostKeyRefused as e:
            return defer.fail(e)
        return defer.succeed(True)

    def _verify(self, key: Key) -> None:
        target, seen = self.target, sha256_fingerprint(key)
        if target.host_key is not None:
            if not fingerprint_matches(target.host_key, key):
                raise HostKeyRefused(f"the host key of {target.host} is {seen}, not the configured host_key")
            return
        if not target.host_key_check:
            self.say(f"ssh: host key of {target.host} not checked (host_key_check is off): {seen}")
            return
        names = [target.host.encode()]
        if target.port != SSH_PORT:
            names.insert(0, f"[{target.host}]:{target.port}".encode())
        for entry in self.entries or ():
            if entry.keyType != key.sshType() or not any(entry.matchesHost(name) for name in names):
                continue
            if entry.matchesKey(key):
                return
            raise HostKeyRefused(f"the host key of {target.host} changed: it is now {seen}, "
                                 f"which {self._file()} does not have")
        raise HostKeyRefused(f"the host key of {target.host} ({seen}) is not in {self._file()}; add it "
                             "there or set the slave's ssh 'host_key'")

    def _file(self) -> str:
        return self.target.known_hosts or DEFAULT_KNOWN_HOSTS


def _read_known_hosts(path: str) -> list:
    """The entries of a known_hosts file (runs in a thread)."""
    if not os.path.exists(path):
        return []
    return list(KnownHostsFile.fromPath(FilePath(path)).iterentries())


def _read_key(path: str, passphrase: Secret | None) -> Key:
    """The private key at ``path`` (runs in a thread: an encrypted key's KDF takes a while)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ChannelError(f"cannot read the ssh key {path}: {e.strerror}") from None
    try:
        return Key.fromString(data, passphrase=passphrase.reveal().encode() if passphrase else None)
    except EncryptedKeyError:
        raise ChannelError(f"the ssh key {path} is encrypted: set 'key_passphrase'") from None
    except (BadKeyError, ValueError):
        # The library's message may quote the file: never show it (it may hold a secret).
        raise ChannelError(f"the ssh key {path} cannot be used: not a private key conch can read "
                           "(OpenSSH or PEM), or the wrong key_passphrase") from None


# -- running one command -------------------------------------------------------------------

@dataclass
class CommandResult:
    """What one remote command did: its exit status or signal, its output; ``dropped`` when the
    connection went away before the server said how the command ended."""

    command: str
    stdout: str = ""
    stderr: str = ""
    exit_status: int | None = None
    exit_signal: str | None = None
    dropped: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def outcome(self) -> str:
        if self.exit_status is not None:
            how = f"exited with {self.exit_status}"
        elif self.exit_signal is not None:
            how = f"was killed by SIG{self.exit_signal}"
        else:
            how = "got no exit status (the connection dropped)"
        said = (self.stderr.strip() or self.stdout.strip())[-ERROR_TAIL_CHARS:]
        return f"{self.command!r} {how}" + (f": {said}" if said else "")


class CommandOutput(protocol.Protocol):
    """Collects a remote command's stdout, stderr and exit status until its channel closes."""

    def __init__(self, result: CommandResult):
        self.result = result
        self._stdout = bytearray()
        self._stderr = bytearray()
        self.done: defer.Deferred = defer.Deferred(lambda d: self.abort())

    def makeConnection(self, transport) -> None:  # noqa: N802
        # The endpoint's session channel drops stderr and keeps the exit status to itself;
        # the channel's request/ext-data hooks are per instance, so listen on them here.
        transport.extReceived = lambda data_type, data: self._keep(self._stderr, data)
        exit_status, exit_signal = transport.request_exit_status, transport.request_exit_signal

        def on_status(data):
            self.result.exit_status = unpack(">L", data[:4])[0]
            return exit_status(data)

        def on_signal(data):
            self.result.exit_signal = data[4:4 + unpack(">L", data[:4])[0]].decode("ascii", "replace")
            return exit_signal(data)

        transport.request_exit_status, transport.request_exit_signal = on_status, on_signal
        # When the TCP connection drops mid-command (a machine going down), the endpoint's SSH
        # transport does not tell its channels (it returns early in connectionLost): hear it
        # ourselves, or we would wait for a close that never comes.
        ssh_transport = transport.conn.transport
        transport_lost = ssh_transport.connectionLost

        def on_transport_lost(reason=None):
            transport_lost(reason)
            self.connectionLost(reason)

        ssh_transport.connectionLost = on_transport_lost
        super().makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self._keep(self._stdout, data)

    @staticmethod
    def _keep(buffer: bytearray, data: bytes) -> None:
        buffer += data[:max(0, OUTPUT_LIMIT_BYTES - len(buffer))]

    def connectionLost(self, reason=protocol.connectionDone) -> None:  # noqa: N802
        if self.done.called:
            return
        result = self.result
        result.stdout = self._stdout.decode("utf-8", "replace")
        result.stderr = self._stderr.decode("utf-8", "replace")
        result.dropped = result.exit_status is None and result.exit_signal is None
        self.done.callback(result)

    def abort(self) -> None:
        """Give up on the command: drop the whole SSH connection at once."""
        ssh_transport = getattr(getattr(self.transport, "conn", None), "transport", None)
        if ssh_transport is not None and ssh_transport.transport is not None:
            ssh_transport.transport.abortConnection()


class _CommandFactory(protocol.Factory):
    def __init__(self, result: CommandResult):
        self.result = result

    def buildProtocol(self, addr):  # noqa: N802
        return CommandOutput(self.result)


# -- parsers -------------------------------------------------------------------------------

UPTIME_TEXT = re.compile(
    r"\bup\s+(?:(?P<days>\d+)\s+days?,?\s*)?"
    r"(?:(?P<hours>\d+):(?P<minutes>\d+)|(?P<mins>\d+)\s+min(?:ute)?s?|(?P<hrs>\d+)\s+hrs?|"
    r"(?P<secs>\d+)\s+secs?)?")


def parse_unix_uptime(text: str) -> float:
    """Seconds of uptime from ``/proc/uptime`` (``"350735.47 234388.90"``) or from ``uptime``
    (``" 10:14:03 up 4 days,  3:05,  2 users,  load average: ..."``); ValueError otherwise."""
    text = text.strip()
    first = text.split()[0] if text else ""
    try:
        return float(first)
    except ValueError:
        pass
    match = UPTIME_TEXT.search(text)
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"no uptime in {text[:100]!r}")
    parts = {name: int(value) for name, value in match.groupdict().items() if value is not None}
    return float(timedelta(
        days=parts.get("days", 0), hours=parts.get("hours", 0) + parts.get("hrs", 0),
        minutes=parts.get("minutes", 0) + parts.get("mins", 0), seconds=parts.get("secs", 0),
    ).total_seconds())


STATISTICS_SINCE = re.compile(r"^\s*Statistics since\s+(?P<when>.+?)\s*$", re.MULTILINE)
WINDOWS_DATE_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p",  # en-US
    "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S",      # month first when it could be either
    "%d.%m.%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%d-%m-%Y %H:%M:%S", "%Y/%m/%d %H:%M:%S",
)
CLOCK_SKEW_S = 300  # a "since" this far in the future is a wrong reading of the date


def parse_windows_statistics(text: str, now: datetime, date_format: str | None = None) -> float:
    """Seconds since the "Statistics since <date>" line of ``net statistics server``, with
    ``now`` the machine's local time; ValueError when there is no such line or date."""
    match = STATISTICS_SINCE.search(text)
    if match is None:
        raise ValueError(f"no 'Statistics since' line in {text.strip()[:100]!r}")
    when = match.group("when")
    for fmt in (date_format,) if date_format else WINDOWS_DATE_FORMATS:
        try:
            since = datetime.strptime(when, fmt)
        except ValueError:
            continue
        seconds = (now - since).total_seconds()
        if seconds >= -CLOCK_SKEW_S:
            return max(0.0, seconds)
    raise ValueError(f"cannot read the date {when!r} of 'Statistics since'"
                     + ("" if date_format else " (set the slave's ssh 'date_format')"))


# -- the channel ---------------------------------------------------------------------------

@implementer(IChannel)
class SSHChannel:
    """Runs the reboot, uptime, log and stop commands on the slave's machine over SSH."""

    name = "ssh"
    operations = frozenset({REBOOT, UPTIME, READ_LOG, SHUTDOWN_SLAVE})

    def __init__(self, runner: IChannelHost, reactor=None):
        self.runner = runner
        self._reactor = reactor

    @property
    def reactor(self):
        """The reactor to connect with (the master's; deadlines use the ``clock`` given)."""
        return self._reactor if self._reactor is not None else self.runner.reactor

    @property
    def master_basedir(self) -> str:
        return self.runner.basedir

    def configured_for(self, location) -> bool:
        settings = location.channels.get("ssh") or {}
        return bool(settings.get("username")) and bool(settings.get("key") or settings.get("password"))

    def perform(self, operation, location, say, clock, deadline_s, **kwargs) -> defer.Deferred:
        if operation not in self.operations:
            return defer.fail(ChannelError(f"the ssh channel cannot {operation}"))
        return with_deadline(
            self._perform(operation, location, say, clock, deadline_s, kwargs), deadline_s, clock,
            lambda: ChannelError(f"ssh to {location.name}: no answer within {deadline_s:g} s"))

    async def _perform(self, operation, location, say, clock, deadline_s, kwargs):
        target = ssh_target(location, self.master_basedir)
        if operation == REBOOT:
            return await self._reboot(target, say, clock)
        if operation == UPTIME:
            return await self._uptime(target, say, clock)
        if operation == READ_LOG:
            return await self._read_log(target, say, clock, kwargs.get("lines", DEFAULT_LOG_LINES))
        return await self._stop_slave(target, say, clock)

    async def _reboot(self, target: SSHTarget, say, clock) -> bool:
        command = target.reboot_command or REBOOT_COMMANDS[target.os]
        say(f"ssh {target.where}: running {command!r}")
        result = await self.run(target, command, say, clock)
        if result.ok:
            say(f"ssh: {command!r} exited with 0")
            return True
        if result.dropped or result.exit_signal is not None:
            # The machine going down takes sshd (and our connection) with it.
            say(f"ssh: {result.outcome()}, as a rebooting machine does")
            return True
        raise ChannelError(f"ssh {target.where}: {result.outcome()}")

    async def _uptime(self, target: SSHTarget, say, clock) -> float:
        command = UPTIME_COMMANDS[target.os]
        stdout = await self._output(target, command, say, clock)
        try:
            if target.os == WINDOWS:
                return parse_windows_statistics(stdout, datetime.fromtimestamp(clock.seconds()),
                                                target.date_format)
            return parse_unix_uptime(stdout)
        except ValueError as e:
            raise ChannelError(f"ssh {target.where}: {command!r}: {e}") from None

    async def _read_log(self, target: SSHTarget, say, clock, lines) -> str:
        if not isinstance(lines, int) or isinstance(lines, bool) or not 0 < lines <= MAX_LOG_LINES:
            raise ChannelError(f"lines must be an integer from 1 to {MAX_LOG_LINES}, not {lines!r}")
        path = self._slave_path(target, "twistd.log")
        if target.os == WINDOWS:
            quoted = path.replace("'", "''")  # PowerShell's single-quoted string
            command = f"powershell -NoProfile -Command \"Get-Content -Tail {lines} '{quoted}'\""
        else:
            command = f"tail -n {lines} {shlex.quote(path)}"
        return await self._output(target, command, say, clock)

    async def _stop_slave(self, target: SSHTarget, say, clock) -> str:
        command = target.stop_command
        if command is None:
            basedir = self._slave_path(target, None)
            command = f"buildslave stop {_quote(target, basedir)}"
        say(f"ssh {target.where}: running {command!r}")
        return await self._output(target, command, say, clock)

    def _slave_path(self, target: SSHTarget, name: str | None) -> str:
        if not target.basedir:
            raise ChannelError("the slave's ssh settings have no 'basedir' (its buildslave basedir)")
        if name is None:
            return target.basedir
        sep = "\\" if target.os == WINDOWS else "/"
        return target.basedir.rstrip("/\\") + sep + name

    async def _output(self, target: SSHTarget, command: str, say, clock) -> str:
        result = await self.run(target, command, say, clock)
        if not result.ok:
            raise ChannelError(f"ssh {target.where}: {result.outcome()}")
        return result.stdout

    async def run(self, target: SSHTarget, command: str, say, clock) -> CommandResult:
        """Run ``command`` on ``target`` and collect what it did (the caller's deadline cancels
        it); ``ChannelError`` when it could not be started."""
        pool = self.reactor.getThreadPool()
        keys = []
        if target.key:
            keys.append(await threads.deferToThreadPool(self.reactor, pool, _read_key, target.key,
                                                        target.key_passphrase))
        entries = None
        if target.host_key is None and target.host_key_check:
            path = target.known_hosts or os.path.expanduser(DEFAULT_KNOWN_HOSTS)
            entries = await threads.deferToThreadPool(self.reactor, pool, _read_known_hosts, path)
        endpoint = SSHCommandClientEndpoint.newConnection(
            self.reactor, command.encode(), target.username.encode(), target.host.encode(), target.port,
            keys=keys or None, password=target.password.reveal().encode() if target.password else None,
            knownHosts=HostKeyCheck(target, entries, say), ui=_NoPrompts(),
        )
        result = CommandResult(command)
        connecting = endpoint.connect(_CommandFactory(result))
        connecting.addTimeout(target.connect_timeout, clock)
        try:
            output = await connecting
        except defer.CancelledError:
            raise  # the caller's deadline: it says so
        except Exception as e:  # every way of not getting a session, said plainly
            raise ChannelError(f"ssh {target.where}: {_connect_error(e, target)}") from None
        return await output.done


class _NoPrompts:
    """The endpoint's ``ui``: nobody is there to answer (``HostKeyCheck`` never asks)."""

    def prompt(self, text):
        return defer.succeed(False)

    def warn(self, text):
        pass


def _quote(target: SSHTarget, value: str) -> str:
    return f'"{value}"' if target.os == WINDOWS else shlex.quote(value)


def _connect_error(e: Exception, target: SSHTarget) -> str:
    if isinstance(e, defer.TimeoutError):
        return f"no SSH session within {target.connect_timeout:g} s"
    if isinstance(e, error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, AuthenticationFailed):
        how = f"key {target.key}" if target.key else "password"
        return f"authentication as {target.username} failed ({how})"
    if isinstance(e, HostKeyRefused | HostKeyChanged):
        return str(e)
    if isinstance(e, error.DNSLookupError):
        return f"cannot resolve {target.host}"
    if isinstance(e, error.ConnectError):
        return e.osError if isinstance(getattr(e, "osError", None), str) else (str(e) or type(e).__name__)
    if isinstance(e, ConchError):
        return f"the server refused: {e.value!r}"
    if isinstance(e, error.ConnectionLost | error.ConnectionDone):
        return "the server closed the connection before the command ran"
    return f"{type(e).__name__}: {e}"
