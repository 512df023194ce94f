"""A fleet of idle slaves in one process: ``--count`` PB connections to one master, opened
at once, each logging in with its own name (s0, s1, ...) and a minimal ``Bot`` mind.

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


class IdleBot(pb.Referenceable):
    """The least a master needs from a slave's mind: greetings, info, an empty builder list."""

    def remote_print(self, message=None):
        return None

    def remote_getWorkerInfo(self):  # noqa: N802 - PB's naming
        return {"admin": "fleet simulator", "host": "localhost", "version": "4.3.0",
                "worker_commands": {}, "environ": {}}

    def remote_getSlaveInfo(self):  # noqa: N802
        return {"admin": "fleet simulator", "host": "localhost"}

    def remote_getCommands(self):  # noqa: N802
        return {}

    def remote_getVersion(self):  # noqa: N802
        return "4.3.0"

    def remote_setBuilderList(self, builders):  # noqa: N802
        return {}

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
        d = factory.login(UsernamePassword(names[index].encode(), args.password.encode()), client=IdleBot())

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
