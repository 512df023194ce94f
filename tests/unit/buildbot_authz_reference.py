"""Run by tests/unit/test_authz_reference.py with stock Buildbot 4.3's Python (.venv-interop):
reads cases as JSON on stdin, answers Buildbot's own ``Authz.assertUserAllowed`` decision for
each (true: allowed, false: Forbidden) as JSON on stdout.

A case: ``authz`` (Python source building ``util.Authz(...)``), ``details`` (the user's
details), ``endpoint`` (``[kind, builder]``, kinds as in master/auth/authz.py) and ``owner``
(who forced the build).  The master is a stand-in that answers only what the matchers ask
(endpoint objects named as Buildbot's data API names them, builders, build request owners).
"""

import json
import sys

from buildbot.plugins import util
from buildbot.www.authz.authz import Forbidden

BUILDERS = {}  # name -> id, filled per case


def endpoint_class(name, **methods):
    return type(name, (), methods)


class Data:
    def __init__(self, builder, owner):
        self.builder, self.owner = builder, owner

    def getEndpoint(self, ep):  # noqa: N802 - Buildbot's name
        build = {"builderid": 7, "buildrequestid": 3, "buildsetid": 5}
        kinds = {
            "builders": endpoint_class("BuildersEndpoint"),
            "builds": endpoint_class("BuildEndpoint", get=lambda self, *a: _done(build)),
            "buildrequests": endpoint_class("BuildRequestEndpoint", get=lambda self, *a: _done(build)),
            "forceschedulers": endpoint_class("ForceSchedulerEndpoint",
                                              findForceScheduler=lambda self, name: _done(Sched())),
            "schedulers": endpoint_class("SchedulerEndpoint"),
            "workers": endpoint_class("WorkerEndpoint"),
        }
        return kinds[ep[0]](), {"schedulername": "force"}

    def get(self, path):
        if path[0] == "builders":
            return _done({"name": self.builder})
        if path[0] == "buildrequests":
            return _done({"buildsetid": 5})
        if path[0] == "buildsets":
            return _done({"owner": (self.owner, "force")} if self.owner else {})
        raise KeyError(path)


class Sched:
    def computeBuilderNames(self, names, builderid):  # noqa: N802 - Buildbot's name
        return _done(names)


def _done(value):
    from twisted.internet import defer
    return defer.succeed(value)


class Master:
    def __init__(self, builder, owner):
        self.data = Data(builder, owner)


ENDPOINTS = {
    "read": (("builders",), "get", {}),
    "force": (("forceschedulers", "force", "force"), "force", None),
    "stop": (("builds", 1), "stop", {}),
    "cancel": (("buildrequests", 3), "cancel", {}),
    "rebuild": (("builds", 1), "rebuild", {}),
    "enable": (("schedulers", 1), "enable", {}),
    "shutdown": (("workers", 1), "stop", {}),
}


def decide(case) -> bool:
    authz = eval(case["authz"], {"util": util})  # noqa: S307 - the test's own table
    kind, builder = case["endpoint"]
    authz.setMaster(Master(builder, case.get("owner")))
    ep, action, options = ENDPOINTS[kind]
    options = {"builderNames": [builder]} if options is None else options
    outcome = []
    d = authz.assertUserAllowed(ep, action, options, case["details"])
    d.addCallbacks(lambda _: outcome.append(True),
                   lambda f: outcome.append(False) if f.check(Forbidden) else outcome.append(repr(f.value)))
    return outcome[0]


if __name__ == "__main__":
    print(json.dumps([decide(case) for case in json.load(sys.stdin)]))
