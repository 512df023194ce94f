"""``util.Authz`` decides as stock Buildbot 4.3's does: a table of configurations, users and
endpoints is decided by Buildbot's own ``Authz`` (run in .venv-interop by
tests/unit/buildbot_authz_reference.py) and by the scopes buildfarm grants; both must agree."""

import itertools
import json
import os
import subprocess

import pytest

from buildfarm.master.auth.authz import ENDPOINT_KINDS, READ
from buildfarm.master.auth.identity import BASIC, Identity
from buildfarm.master.auth.webusers import WebAuth, anonymous_may_read
from buildfarm.master.plugins import util

HERE = os.path.dirname(os.path.abspath(__file__))
INTEROP_PYTHON = os.path.join(HERE, "..", "..", ".venv-interop", "bin", "python")
BUILDERS = ("b1", "b2", "release-x")

# One configuration per rule kind and role matcher, and the orderings that matter.
AUTHZ = {
    "force per builder, then any control": (
        "util.Authz(allowRules=[util.ForceBuildEndpointMatcher(builder='b1', role='release'),"
        " util.AnyControlEndpointMatcher(role='admins')],"
        " roleMatchers=[util.RolesFromUsername(roles=['release'], usernames=['alice']),"
        " util.RolesFromGroups(groupPrefix='bb-')])"),
    "builder pattern, defaultDeny=False falls through": (
        "util.Authz(allowRules=[util.ForceBuildEndpointMatcher(builder='release-*', role='rel',"
        " defaultDeny=False), util.StopBuildEndpointMatcher(role='dev', defaultDeny=False),"
        " util.AnyEndpointMatcher(role='admins', defaultDeny=False),"
        " util.RebuildBuildEndpointMatcher(role='dev')],"
        " roleMatchers=[util.RolesFromEmails(rel=['alice'], dev=['bob', 'carol@x']),"
        " util.RolesFromGroups(groupPrefix='bb-')])"),
    "any endpoint first (reads need a role)": (
        "util.Authz(allowRules=[util.AnyEndpointMatcher(role='admins', defaultDeny=False),"
        " util.AnyEndpointMatcher(role='users')],"
        " roleMatchers=[util.RolesFromUsername(roles=['users'], usernames=['alice', 'bob']),"
        " util.RolesFromGroups(groupPrefix='bb-')])"),
    "owner may stop and rebuild": (
        "util.Authz(allowRules=[util.StopBuildEndpointMatcher(role='owner'),"
        " util.RebuildBuildEndpointMatcher(builder='b2', role='owner'),"
        " util.AnyControlEndpointMatcher(role='admins')],"
        " roleMatchers=[util.RolesFromOwner(role='owner'), util.RolesFromGroups(groupPrefix='bb-')])"),
    "owner roles stay for later rules": (
        "util.Authz(allowRules=[util.StopBuildEndpointMatcher(role='nobody', defaultDeny=False),"
        " util.AnyControlEndpointMatcher(role='own*')],"
        " roleMatchers=[util.RolesFromOwner(role='owner')])"),
    "enable schedulers, role patterns": (
        "util.Authz(allowRules=[util.EnableSchedulerEndpointMatcher(role='sched*'),"
        " util.AnyControlEndpointMatcher(role='*admin*')],"
        " roleMatchers=[util.RolesFromUsername(roles=['scheduler', 'superadmin'], usernames=['carol']),"
        " util.RolesFromUsername(roles=['scheduling'], usernames=['bob'])])"),
    "regular expressions": (
        "util.Authz(stringsMatcher=util.reStrMatcher, allowRules=["
        "util.ForceBuildEndpointMatcher(builder='b[12]$', role='dev.*'),"
        " util.AnyControlEndpointMatcher(role='admins$')],"
        " roleMatchers=[util.RolesFromUsername(roles=['developer'], usernames=['bob']),"
        " util.RolesFromGroups(groupPrefix='bb-')])"),
    "no rules: Buildbot allows everything": "util.Authz()",
}
USERS = {
    "alice": {"username": "alice", "email": "alice"},
    "bob": {"username": "bob", "email": "bob"},
    "carol": {"username": "carol", "email": "carol@x", "groups": ["bb-admins", "dev"]},
    "dave": {"username": "dave", "email": "dave@x", "groups": ["ops"]},
}
ENDPOINTS = [(kind, builder) for kind in ENDPOINT_KINDS if kind != "poll"
             for builder in (BUILDERS if kind in ("force", "stop", "cancel", "rebuild") else ("b1",))]
OWNERS = (None, "alice", "carol@x")


def cases() -> list[dict]:
    return [{"name": name, "authz": source, "user": user, "details": USERS[user], "endpoint": list(endpoint),
             "owner": owner}
            for (name, source), user, endpoint, owner
            in itertools.product(AUTHZ.items(), USERS, ENDPOINTS, OWNERS)
            if owner is None or endpoint[0] in ("stop", "rebuild")]


@pytest.fixture(scope="module")
def buildbot_decisions() -> list[bool]:
    table = cases()
    done = subprocess.run([INTEROP_PYTHON, os.path.join(HERE, "buildbot_authz_reference.py")],
                          input=json.dumps(table), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def buildfarm_decision(case: dict) -> bool:
    authz = eval(case["authz"], {"util": util})  # noqa: S307 - the table above
    account = WebAuth(authz=authz, builders=BUILDERS).account_for(case["details"], "test")
    kind, builder = case["endpoint"]
    template = ENDPOINT_KINDS[kind][1]
    scope = "builds:read" if kind == READ else template.format(builder)
    owner = case["owner"]
    # The owner property is the user's name; Buildbot compares it with the user's email.
    owner_name = account.name if owner is not None and owner == case["details"]["email"] else owner
    return Identity(account, BASIC).may(scope, owner_name)


def test_every_decision_equals_buildbots(buildbot_decisions):
    table = cases()
    assert len(table) == len(buildbot_decisions) > 500
    differ = [(c["name"], c["user"], c["endpoint"], c["owner"], theirs)
              for c, theirs in zip(table, buildbot_decisions, strict=True) if buildfarm_decision(c) != theirs]
    assert differ == []


def test_the_table_has_both_answers_for_every_configuration(buildbot_decisions):
    answers = {}
    for case, theirs in zip(cases(), buildbot_decisions, strict=True):
        answers.setdefault(case["name"], set()).add(theirs)
    assert {name for name, seen in answers.items() if seen == {True, False}} == set(AUTHZ) - {
        "no rules: Buildbot allows everything"}


def test_anonymous_reading_follows_authz():
    reads_need_a_role = eval(AUTHZ["any endpoint first (reads need a role)"], {"util": util})  # noqa: S307
    assert not anonymous_may_read(WebAuth(authz=reads_need_a_role))
    assert anonymous_may_read(WebAuth(authz=eval(AUTHZ["force per builder, then any control"],  # noqa: S307
                                                 {"util": util})))
