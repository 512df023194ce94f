"""The ``buildslave`` command: create-slave, start, stop, restart."""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
from dataclasses import dataclass

from buildfarm.common.cli import CLIError, run_command
from buildfarm.common.daemon import log_tail, start_daemon, stop_daemon

PROG = "buildslave"
TAC_FILE = "buildbot.tac"
DEFAULT_MASTER_PORT = 9989
DEFAULT_KEEPALIVE_S = 600
DEFAULT_MAXDELAY_S = 300
DEFAULT_LOG_SIZE_BYTES = 10 * 1000 * 1000
DEFAULT_LOG_COUNT = 10
TAC_MODE = 0o600
READY_PATTERNS = [r"attached to master", r"connection to master .* failed", r"login refused by master"]

_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?")
_BRACKETED = re.compile(r"\[([^\]]*)\](?::(.*))?")

TAC_TEMPLATE = '''\
# The buildslave configuration, written by `buildslave create-slave`.
# twistd runs it: `buildslave start BASEDIR` (or `twistd -y buildbot.tac` in BASEDIR).
import os

from twisted.application import service
from twisted.logger import ILogObserver, textFileLogObserver
from twisted.python.logfile import LogFile

from buildfarm.slave.service import SlaveService

basedir = {basedir!r}
rotateLength = {rotateLength!r}
maxRotatedFiles = {maxRotatedFiles!r}

# A relocatable buildbot.tac finds its basedir next to itself.
if basedir == ".":
    basedir = os.path.abspath(os.path.dirname(__file__))

application = service.Application("buildslave")
if rotateLength is not None:
    logfile = LogFile.fromFullPath(
        os.path.join(basedir, "twistd.log"),
        rotateLength=rotateLength,
        maxRotatedFiles=maxRotatedFiles,
    )
    application.setComponent(ILogObserver, textFileLogObserver(logfile))

buildmaster_host = {host!r}
port = {port!r}
slavename = {name!r}
passwd = {passwd!r}
keepalive = {keepalive!r}
usepty = {usepty!r}
umask = {umask}
maxdelay = {maxdelay!r}
maxretries = {maxretries!r}
allow_shutdown = {allow_shutdown!r}
connection_string = {connection_string!r}
use_tls = {use_tls!r}
# Masters sharing one database, tried in this order (None: only buildmaster_host:port).
masters = {masters!r}

s = SlaveService(
    buildmaster_host, port, slavename, passwd, basedir,
    keepalive=keepalive, usepty=usepty, umask=umask, maxdelay=maxdelay,
    maxretries=maxretries, allow_shutdown=allow_shutdown,
    connection_string=connection_string, use_tls=use_tls, masters=masters,
)
s.setServiceParent(application)
'''

INFO_DEFAULTS = {
    "admin": "Your Name Here <admin@youraddress.invalid>",
    "host": "Please put a description of this host here",
}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (via CLIError), never usage text."""

    def error(self, message: str):
        raise CLIError(f"{message} (see '{self.prog} --help')")


@dataclass(frozen=True)
class MasterAddress:
    """Where the master listens."""

    host: str
    port: int


def parseMasterAddress(text: str) -> MasterAddress:
    """``host``, ``host:port``, ``[v6addr]`` or ``[v6addr]:port``; CLIError otherwise."""
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed:
        host, port = bracketed.group(1), bracketed.group(2)
        valid = _isIPv6(host)
    elif text.count(":") <= 1:
        host, colon, port = text.partition(":")
        port = port if colon else None
        valid = bool(_HOSTNAME.fullmatch(host))
    else:
        host, port, valid = text, None, False
    if not valid:
        raise CLIError(
            f"malformed master address {text!r}: expected HOST[:PORT] or [IPV6ADDR]:PORT"
        )
    return MasterAddress(host, _parsePort(text, port))


def parseMasterAddresses(text: str) -> list[MasterAddress]:
    """One master address, or several separated by commas (masters sharing one database,
    tried in that order); CLIError on an empty or repeated one."""
    addresses = []
    for part in text.split(","):
        if not part.strip():
            raise CLIError(f"malformed master list {text!r}: an empty address between commas")
        address = parseMasterAddress(part.strip())
        if address in addresses:
            raise CLIError(f"malformed master list {text!r}: {part.strip()} is named twice")
        addresses.append(address)
    return addresses


def _isIPv6(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6, host)
    except OSError:
        return False
    return True


def _parsePort(text: str, port: str | None) -> int:
    if port is None:
        return DEFAULT_MASTER_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise CLIError(f"malformed master address {text!r}: the port must be 1-65535")
    return int(port)


def _octal(value: str) -> int:
    try:
        return int(value, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal umask: {value!r}") from None


def _positiveInt(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"not a non-negative integer: {value!r}")
    return int(value)


def buildParser() -> argparse.ArgumentParser:
    """The ``buildslave`` argument parser."""
    parser = _Parser(prog=PROG, description="Create, start and stop a buildfarm slave.")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    create = commands.add_parser("create-slave", help="create a slave basedir")
    _addCreateOptions(create)
    for name, text in (("start", "start the slave"), ("stop", "stop the slave"),
                       ("restart", "stop then start the slave")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("basedir", nargs="?", default=".", help="the slave's basedir")
    return parser


def _addCreateOptions(create: argparse.ArgumentParser) -> None:
    add = create.add_argument
    add("--force", action="store_true", help="re-use a basedir that already holds a slave")
    add("--relocatable", action="store_true",
        help="write a buildbot.tac that finds its basedir next to itself")
    add("--no-logrotate", action="store_true", help="let twistd handle twistd.log")
    add("--keepalive", type=_positiveInt, default=DEFAULT_KEEPALIVE_S,
        help="seconds between keepalives to the master; 0 = off (default 600)")
    add("--usepty", type=_positiveInt, choices=(0, 1), default=0,
        help="run commands in a pseudo-terminal by default (default 0)")
    add("--umask", type=_octal, default=None, help="umask of the daemon, octal (e.g. 022)")
    add("--maxdelay", type=_positiveInt, default=DEFAULT_MAXDELAY_S,
        help="longest wait between connection attempts, s (default 300)")
    add("--maxretries", type=_positiveInt, default=None,
        help="give up after this many failed attempts (default: never)")
    add("--log-size", type=_positiveInt, default=DEFAULT_LOG_SIZE_BYTES,
        help="rotate twistd.log at this size in bytes (default 10 MB)")
    add("--log-count", type=_positiveInt, default=DEFAULT_LOG_COUNT,
        help="rotated logs to keep (default 10)")
    add("--allow-shutdown", choices=("signal", "file"), default=None,
        help="let SIGHUP or touching shutdown.stamp ask the master to stop this slave")
    add("--use-tls", action="store_true", help="connect to the master over TLS")
    add("--connection-string", default=None,
        help="a Twisted client endpoint to the master (overrides MASTER and --use-tls)")
    add("basedir", help="the slave's directory")
    add("master", help="the master's HOST[:PORT] (default port 9989); several masters sharing one "
                       "database: HOST1:PORT1,HOST2:PORT2 (tried in that order, each in turn when "
                       "one is lost)")
    add("name", help="the slave's name on the master")
    add("passwd", help="the slave's password")


def tacContents(options: argparse.Namespace, masters: list[MasterAddress]) -> str:
    """The buildbot.tac text for these create-slave options."""
    basedir = "." if options.relocatable else os.path.abspath(options.basedir)
    master = masters[0]
    return TAC_TEMPLATE.format(
        masters=[(m.host, m.port) for m in masters] if len(masters) > 1 else None,
        basedir=basedir,
        rotateLength=None if options.no_logrotate else options.log_size,
        maxRotatedFiles=None if options.no_logrotate else options.log_count,
        host=master.host,
        port=master.port,
        name=options.name,
        passwd=options.passwd,
        keepalive=options.keepalive,
        usepty=bool(options.usepty),
        umask="None" if options.umask is None else oct(options.umask),
        maxdelay=options.maxdelay,
        maxretries=options.maxretries,
        allow_shutdown=options.allow_shutdown,
        connection_string=options.connection_string,
        use_tls=options.use_tls,
    )


def createSlave(options: argparse.Namespace) -> int:
    """Write BASEDIR/buildbot.tac and info files; print what to do next."""
    masters = parseMasterAddresses(options.master)
    basedir = os.path.abspath(options.basedir)
    tacPath = os.path.join(basedir, TAC_FILE)
    if os.path.exists(tacPath) and not options.force:
        raise CLIError(f"{basedir} already holds a slave ({TAC_FILE}); use --force to re-use it")
    os.makedirs(basedir, exist_ok=True)
    print(_writeTac(tacPath, tacContents(options, masters)))
    _writeInfoFiles(basedir)
    named = ", ".join(f"{m.host}:{m.port}" for m in masters)
    print(f"buildslave {options.name} created in {basedir}, for master{'s' if len(masters) > 1 else ''} "
          f"{named}")
    print(f"next: describe this host in {os.path.join(basedir, 'info', 'admin')} and "
          f"info/host, then run: buildslave start {options.basedir}")
    return 0


def _writeTac(path: str, contents: str) -> str:
    """Write buildbot.tac (0600: it holds the password); keep a different existing one."""
    if os.path.exists(path):
        with open(path) as f:
            if f.read() == contents:
                return f"{path} already exists and is up to date"
        _writePrivate(path + ".new", contents)
        return f"not touching the existing {path}; wrote {TAC_FILE}.new instead"
    _writePrivate(path, contents)
    return f"wrote {path}"


def _writePrivate(path: str, contents: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, TAC_MODE)
    os.fchmod(fd, TAC_MODE)
    with os.fdopen(fd, "w") as f:
        f.write(contents)


def _writeInfoFiles(basedir: str) -> None:
    infodir = os.path.join(basedir, "info")
    os.makedirs(infodir, exist_ok=True)
    for name, text in INFO_DEFAULTS.items():
        path = os.path.join(infodir, name)
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(text + "\n")


def startSlave(basedir: str) -> int:
    """Start the daemon; return once its log says it attached or is trying to."""
    outcome = start_daemon(basedir, ready_patterns=READY_PATTERNS)
    if not outcome.ok:
        sys.stderr.write(log_tail(basedir))
        raise CLIError(f"buildslave did not start: {outcome.line.strip()}")
    print(describeStart(outcome.line))
    return 0


def describeStart(line: str) -> str:
    """One line for the user from the log line that said the slave is up."""
    attached = re.search(r"attached to master (\S+)", line)
    if attached:
        return f"buildslave attached to master {attached.group(1)}"
    failed = re.search(r"(connection to master .* failed: .*?)(; retrying)?$", line)
    if failed:
        return f"buildslave started; master not reachable yet: {failed.group(1)}"
    refused = re.search(r"(login refused by master .*?)(; will retry)?$", line)
    if refused:
        return f"buildslave started; {refused.group(1)} (it will keep retrying)"
    return f"buildslave started: {line.strip()}"


def stopSlave(basedir: str) -> int:
    """Stop the daemon if it runs."""
    print("buildslave stopped" if stop_daemon(basedir) else "buildslave not running")
    return 0


def restartSlave(basedir: str) -> int:
    """Stop (if running), then start."""
    stopSlave(basedir)
    return startSlave(basedir)


def dispatch(argv: list[str]) -> int:
    """Parse ``argv`` and run the command."""
    options = buildParser().parse_args(argv)
    if options.command is None:
        raise CLIError("missing command: create-slave, start, stop or restart (see --help)")
    if options.command == "create-slave":
        return createSlave(options)
    action = {"start": startSlave, "stop": stopSlave, "restart": restartSlave}
    return action[options.command](options.basedir)


def main(argv: list[str] | None = None) -> int:
    """Console script entry point."""
    args = sys.argv[1:] if argv is None else argv
    return run_command(PROG, lambda: dispatch(args))


if __name__ == "__main__":
    sys.exit(main())
