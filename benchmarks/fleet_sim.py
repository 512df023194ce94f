"""A fleet of idle slaves in one process: ``--count`` PB connections to one master, opened
at once, each logging in with its own name (s0, s1, ...) and a ``Bot`` mind that answers
what a real slave does when it attaches: its info (the environment a daemon started from a
login shell has, 21 commands with versions, host facts; some values its own) and one builder
object per builder the master lists.  It never builds.

    python benchmarks/fleet_sim.py --port P --count N [--deadline S]

Run it with the Python of the system under test (.venv or .venv-interop): it imports only
Twisted.  When every login has succeeded or failed, or at the deadline, it prints one JSON
line ``{"count", "attached", "failed", "stuck", "all_attached_s", "last_attached_s",
"errors"}`` (times from the first connect) and keeps the connections open until its stdin is
closed, so the caller can measure the master with the fleet attached.
"""

import argparse
import collections
import json
import sys
import time

from twisted.cred.credentials import UsernamePassword
from twisted.internet import reactor, stdio
from twisted.protocols.basic import LineReceiver
from twisted.spread import pb

CONNECT_TIMEOUT_S = 30
ERROR_KINDS_SHOWN = 5


# What a slave daemon typically sends about itself: its environment (a daemon started from a
# login shell on Debian), the commands it runs with their versions, and facts of its host.
SLAVE_ENVIRON = {
    "SHELL": "/bin/bash", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TERM": "xterm-256color",
    "USER": "buildslave", "LOGNAME": "buildslave", "HOME": "/home/buildslave",
    "PATH": "/home/buildslave/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "MAIL": "/var/mail/buildslave", "SHLVL": "1", "LESSOPEN": "| /usr/bin/lesspipe %s",
    "LESSCLOSE": "/usr/bin/lesspipe %s %s", "XDG_SESSION_TYPE": "tty", "XDG_SESSION_CLASS": "user",
    "XDG_RUNTIME_DIR": "/run/user/1001", "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1001/bus",
    "PYTHONUNBUFFERED": "1", "CCACHE_DIR": "/home/buildslave/.ccache", "MAKEFLAGS": "-j8",
    "_": "/usr/bin/buildslave",
}
SLAVE_COMMANDS = {
    name: "3.3" for name in (
        "shell", "uploadFile", "uploadDirectory", "downloadFile", "mkdir", "rmdir", "cpdir",
        "stat", "glob", "listdir", "rmfile", "move", "repo", "bk", "cvs", "darcs", "git",
        "hg", "mtn", "p4", "svn")
}


def slave_info(name: str) -> dict:
    """The info a real slave named ``name`` sends: its own copy, some values its own."""
    environ = dict(SLAVE_ENVIRON)
    environ.update(HOSTNAME=f"{name}.fleet.example.com", PWD=f"/home/buildslave/{name}",
                   SSH_CONNECTION=f"10.0.{len(name)}.1 52114 10.0.0.2 22")
    return {"admin": "Release Engineering <releng@example.com>",
            "host": f"{name}.fleet.example.com, Debian 12, 8 cores",
            "access_uri": f"ssh://{name}.fleet.example.com", "environ": environ, "system": "posix",
            "basedir": f"/home/buildslave/{name}", "numcpus": 8, "version": "4.3.0",
            "worker_commands": dict(SLAVE_COMMANDS), "delete_leftover_dirs": False}


class IdleSlaveBuilder(pb.Referenceable):
    """One builder of an idle slave: greeted, never asked to build."""

    def remote_setMaster(self, master):  # noqa: N802 - PB's naming
        return None

    def remote_print(self, message=None):
        return None


class IdleBot(pb.Referenceable):
    """A slave's mind that never builds: greetings, the info a real slave sends, and one
    builder object for each builder the master lists."""

    def __init__(self, name: str):
        self.name = name
        self.builders: dict[str, IdleSlaveBuilder] = {}

    def remote_print(self, message=None):
        return None

    def remote_getWorkerInfo(self):  # noqa: N802 - PB's naming
        return slave_info(self.name)

    def remote_getSlaveInfo(self):  # noqa: N802
        info = slave_info(self.name)
        del info["worker_commands"], info["version"]
        return info

    def remote_getCommands(self):  # noqa: N802
        return dict(SLAVE_COMMANDS)

    def remote_getVersion(self):  # noqa: N802
        return "4.3.0"

    def remote_setBuilderList(self, builders):  # noqa: N802
        wanted = [entry[0] for entry in builders]
        self.builders = {name: self.builders.get(name) or IdleSlaveBuilder() for name in wanted}
        return dict(self.builders)

    def remote_keepalive(self):
        return None

    def remote_shutdown(self):
        return None


class QuitOnEof(LineReceiver):
    """Stops the reactor (closing every connection) when the caller closes our stdin."""

    delimiter = b"\n"

    def lineReceived(self, line):  # noqa: N802
        pass

    def connectionLost(self, reason):  # noqa: N802
        if reactor.running:
            reactor.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--password", default="pass")
    parser.add_argument("--deadline", type=float, default=60.0)
    parser.add_argument("--names", default="", help="comma-separated slave names instead of s0, s1, ...")
    args = parser.parse_args()
    names = args.names.split(",") if args.names else [f"s{i}" for i in range(args.count)]
    args.count = len(names)

    started = time.monotonic()
    attached_at: list[float] = []
    errors: collections.Counter = collections.Counter()
    perspectives = []  # keep every perspective referenced so its connection stays up
    reported = []

    def report():
        if reported:
            return
        reported.append(True)
        complete = len(attached_at) == args.count
        print(json.dumps({
            "count": args.count, "attached": len(attached_at), "failed": sum(errors.values()),
            "stuck": args.count - len(attached_at) - sum(errors.values()),
            "all_attached_s": max(attached_at) if complete else None,
            "last_attached_s": max(attached_at, default=None),
            "errors": dict(errors.most_common(ERROR_KINDS_SHOWN)),
        }), flush=True)

    def settled(_):
        if len(attached_at) + sum(errors.values()) == args.count:
            report()

    def login(index: int):
        factory = pb.PBClientFactory()
        reactor.connectTCP(args.host, args.port, factory, timeout=CONNECT_TIMEOUT_S)
        d = factory.login(UsernamePassword(names[index].encode(), args.password.encode()),
                          client=IdleBot(names[index]))

        def got(perspective):
            perspectives.append(perspective)
            attached_at.append(time.monotonic() - started)

        def failed(failure):
            errors[failure.type.__name__] += 1

        d.addCallbacks(got, failed)
        d.addBoth(settled)

    for index in range(args.count):
        login(index)
    reactor.callLater(args.deadline, report)
    stdio.StandardIO(QuitOnEof())
    reactor.run()
    report()
    sys.exit(0)


if __name__ == "__main__":
    main()
