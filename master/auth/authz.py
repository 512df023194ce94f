"""Buildbot's ``c['www']['authz']`` (``util.Authz`` with its endpoint and role matchers),
translated into buildfarm scopes.

Buildbot decides each request at the time it comes: the caller's roles come from the role
matchers, then the allow rules are tried in order; the first rule whose endpoint matches
decides when the caller has its role (allowed) or when it has ``defaultDeny`` (refused, 403);
a rule without ``defaultDeny`` passes the question on to the next rule, and a request no
rule refused is allowed.  buildfarm asks scopes instead, so ``Authz.grants`` runs exactly that
decision, once per user, for every control endpoint the configuration has (each builder's
force, stop, cancel and rebuild, the schedulers' enable, the slaves' shutdown, changes'
poll, and reading), and grants the scope of each endpoint it allows, remembering which rule
and which role matcher allowed it.  ``RolesFromOwner`` gives its role only to the owner of a
build: the scopes it alone grants are *owner scopes*, held on the user's own builds.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from buildfarm.master.auth.identity import READ_SCOPES
from buildfarm.master.configobject import ConfigObject

# What a control endpoint is about: each kind is one of Buildbot's endpoints and actions,
# and the buildfarm scope (a template over the target) that stands for it.
READ = "read"
FORCE = "force"
STOP = "stop"
CANCEL = "cancel"
REBUILD = "rebuild"
ENABLE = "enable"
SHUTDOWN = "shutdown"
POLL = "poll"
# kind -> (Buildbot's endpoint and action, the scope template)
ENDPOINT_KINDS = {
    READ: ("any endpoint, action get", None),
    FORCE: ("forceschedulers/<name>, action force, for builder <b>", "builds:force:{}"),
    STOP: ("builds/<id>, action stop", "builds:stop:{}"),
    CANCEL: ("buildrequests/<id>, action cancel", "builds:cancel:{}"),
    REBUILD: ("builds/<id>, action rebuild", "builds:rebuild:{}"),
    ENABLE: ("schedulers/<id>, action enable", "schedulers:enable:{}"),
    SHUTDOWN: ("workers/<id>, action stop", "slaves:shutdown:{}"),
    POLL: ("changesources, action poll", "changes:poll:{}"),
}
# The kinds whose target is a builder (the others are granted for every target alike).
BUILDER_KINDS = (FORCE, STOP, CANCEL, REBUILD)
ANY_TARGET = "*"
NO_RULE_REFUSES = "no allow rule refuses it (Buildbot allows what no rule denies)"


def fnmatch_strings(value: str, pattern: str) -> bool:
    """Buildbot's default ``stringsMatcher``: shell-style patterns."""
    return fnmatch.fnmatch(value, pattern)


def re_strings(value: str, pattern: str) -> bool:
    """``util.reStrMatcher``: a regular expression matched at the start of the value."""
    return re.match(pattern, value) is not None


@dataclass(frozen=True)
class Endpoint:
    """One control endpoint: a kind of ``ENDPOINT_KINDS`` and its target (a builder name,
    or ``ANY_TARGET`` for kinds decided alike whatever the target)."""

    kind: str
    target: str = ANY_TARGET

    def scopes(self) -> tuple[str, ...]:
        template = ENDPOINT_KINDS[self.kind][1]
        return READ_SCOPES if template is None else (template.format(self.target),)


# -- endpoint matchers ---------------------------------------------------------------------

class EndpointMatcherBase(ConfigObject):
    """An allow rule: the endpoints it matches, the ``role`` that may use them, and whether
    a caller without the role is refused (``defaultDeny``, the default) or passed on."""

    kinds: tuple[str, ...] = ()
    finds_owner = False  # whether a match names a build, whose owner RolesFromOwner looks at

    def __init__(self, role: str, defaultDeny: bool = True, builder: str | None = None):  # noqa: N803
        self._remember_config_line()
        self.role = role
        self.defaultDeny = defaultDeny
        self.builder = builder

    def matches(self, endpoint: Endpoint, match: Callable[[str, str], bool]) -> bool:
        if endpoint.kind not in self.kinds:
            return False
        if self.builder is None:
            return True
        return endpoint.kind in BUILDER_KINDS and match(endpoint.target, self.builder)

    def problems(self) -> list[str]:
        found = []
        if not isinstance(self.role, str):
            found.append(f"{self!r}: role must be a string")
        if not isinstance(self.defaultDeny, bool):
            found.append(f"{self!r}: defaultDeny must be True or False")
        if self.builder is not None and not isinstance(self.builder, str):
            found.append(f"{self!r}: builder must be a string (a pattern)")
        return found

    def __repr__(self) -> str:
        args = [f"role={self.role!r}"]
        if self.builder is not None:
            args.insert(0, f"builder={self.builder!r}")
        if self.defaultDeny is not True:
            args.append(f"defaultDeny={self.defaultDeny!r}")
        return f"{type(self).__name__}({', '.join(args)})"


class AnyEndpointMatcher(EndpointMatcherBase):
    """Every endpoint, reading included."""

    kinds = tuple(ENDPOINT_KINDS)

    def __init__(self, role: str, defaultDeny: bool = True):  # noqa: N803
        super().__init__(role, defaultDeny)


class AnyControlEndpointMatcher(EndpointMatcherBase):
    """Every endpoint but reading: any action that changes something."""

    kinds = tuple(k for k in ENDPOINT_KINDS if k != READ)

    def __init__(self, role: str, defaultDeny: bool = True):  # noqa: N803
        super().__init__(role, defaultDeny)


class ForceBuildEndpointMatcher(EndpointMatcherBase):
    """Forcing builds (of ``builder``, a pattern, if given)."""

    kinds = (FORCE,)


class StopBuildEndpointMatcher(EndpointMatcherBase):
    """Stopping builds (of ``builder``, if given).  As in Buildbot 4, it does not match
    cancelling a build request (whose action is ``cancel``, not ``stop``)."""

    kinds = (STOP,)
    finds_owner = True


class RebuildBuildEndpointMatcher(EndpointMatcherBase):
    """Rebuilding builds (of ``builder``, if given)."""

    kinds = (REBUILD,)
    finds_owner = True


class EnableSchedulerEndpointMatcher(EndpointMatcherBase):
    """Enabling and disabling schedulers."""

    kinds = (ENABLE,)

    def __init__(self, role: str, defaultDeny: bool = True):  # noqa: N803
        super().__init__(role, defaultDeny)


# -- role matchers ---------------------------------------------------------------------------

class RolesFromBase(ConfigObject):
    """Roles of a user, from the details its authentication gives (``username``, ``email``,
    ``groups``)."""

    def __init__(self):
        self._remember_config_line()

    def roles_of(self, details: dict) -> list[str]:
        return []

    def problems(self) -> list[str]:
        return []


class RolesFromUsername(RolesFromBase):
    """``roles`` for each user named in ``usernames``."""

    def __init__(self, roles: list[str], usernames: list[str]):
        super().__init__()
        self.roles = roles
        self.usernames = usernames

    def roles_of(self, details: dict) -> list[str]:
        return list(self.roles) if details.get("username") in self.usernames else []

    def problems(self) -> list[str]:
        found = []
        if not _strings(self.roles):
            found.append(f"RolesFromUsername: roles must be a list of strings, not {self.roles!r}")
        if not isinstance(self.usernames, list | tuple) or None in self.usernames:
            found.append("RolesFromUsername: usernames must be a list of names (Usernames cannot be None)")
        return found

    def __repr__(self) -> str:
        return f"RolesFromUsername(roles={self.roles!r}, usernames={self.usernames!r})"


class RolesFromEmails(RolesFromBase):
    """``RolesFromEmails(role=[email, ...], ...)``: each role for the users of those emails
    (a user of ``UserPasswordAuth`` or ``HTPasswdAuth`` has its name as email, as in Buildbot)."""

    def __init__(self, **roles: list[str]):
        super().__init__()
        self.by_email: dict[str, list[str]] = {}
        self.given = roles
        for role, emails in roles.items():
            for email in emails if isinstance(emails, list | tuple) else ():
                self.by_email.setdefault(email, []).append(role)

    def roles_of(self, details: dict) -> list[str]:
        return list(self.by_email.get(details.get("email"), [])) if "email" in details else []

    def problems(self) -> list[str]:
        return [f"RolesFromEmails: {role}= must be a list of emails" for role, emails in self.given.items()
                if not _strings(emails)]

    def __repr__(self) -> str:
        return f"RolesFromEmails({', '.join(f'{r}={e!r}' for r, e in self.given.items())})"


class RolesFromGroups(RolesFromBase):
    """Each group of the user starting with ``groupPrefix`` is a role (the prefix removed)."""

    def __init__(self, groupPrefix: str = ""):  # noqa: N803
        super().__init__()
        self.groupPrefix = groupPrefix

    def roles_of(self, details: dict) -> list[str]:
        prefix = self.groupPrefix
        return [g[len(prefix):] for g in details.get("groups", ()) if g.startswith(prefix)]

    def __repr__(self) -> str:
        return f"RolesFromGroups(groupPrefix={self.groupPrefix!r})"


class RolesFromOwner(RolesFromBase):
    """``role`` for the owner of a build (who forced it), on that build only."""

    def __init__(self, role: str):
        super().__init__()
        self.role = role

    def owner_roles(self, details: dict, owner: str | None) -> list[str]:
        return [self.role] if owner is not None and details.get("email") == owner else []

    def __repr__(self) -> str:
        return f"RolesFromOwner(role={self.role!r})"


def _strings(value) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


# -- the decision ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Grant:
    """Why a scope is held: the allow rule (its position and repr) and the role matchers
    that gave the role it asks for; ``owner_only`` when only the build's owner holds it."""

    scope: str
    rule: str
    role: str
    matchers: tuple[str, ...]
    owner_only: bool = False

    def origin(self) -> str:
        if not self.matchers:
            return f"www['authz']: {self.rule}"
        return f"www['authz']: {self.rule} for role {self.role!r} from {', '.join(self.matchers)}"


@dataclass(frozen=True)
class Decision:
    """Buildbot's answer for one endpoint: allowed, and by which rule (None: no rule
    matched, or every matching rule passed it on) with the role that matched."""

    allowed: bool
    rule_index: int | None = None
    role: str | None = None


class Authz(ConfigObject):
    """``util.Authz(allowRules=[...], roleMatchers=[...], stringsMatcher=util.fnmatchStrMatcher)``."""

    def __init__(self, allowRules=None, roleMatchers=None, stringsMatcher=fnmatch_strings):  # noqa: N803
        self._remember_config_line()
        self.allowRules = list(allowRules or [])
        self.roleMatchers = [r for r in roleMatchers or [] if not isinstance(r, RolesFromOwner)]
        self.ownerRoleMatchers = [r for r in roleMatchers or [] if isinstance(r, RolesFromOwner)]
        self.match = stringsMatcher

    def problems(self) -> list[str]:
        found = []
        for rule in self.allowRules:
            if not isinstance(rule, EndpointMatcherBase):
                found.append(f"Authz allowRules holds {rule!r}, not an endpoint matcher such as "
                             "util.AnyControlEndpointMatcher(role=...)")
            else:
                found += rule.problems()
        for matcher in self.roleMatchers + self.ownerRoleMatchers:
            if not isinstance(matcher, RolesFromBase):
                found.append(f"Authz roleMatchers holds {matcher!r}, not a role matcher such as "
                             "util.RolesFromUsername(...)")
            else:
                found += matcher.problems()
        if not callable(self.match):
            found.append("Authz stringsMatcher must be a function (value, pattern) -> bool")
        return found

    def roles(self, details: dict) -> dict[str, list[str]]:
        """The user's roles, each with the role matchers that gave it."""
        given: dict[str, list[str]] = {}
        for matcher in self.roleMatchers:
            for role in matcher.roles_of(details):
                given.setdefault(role, []).append(repr(matcher))
        return given

    def decide(self, endpoint: Endpoint, roles: Iterable[str], owner_roles: Iterable[str] = ()) -> Decision:
        """Buildbot's ``assertUserAllowed`` for one endpoint: the first matching rule whose
        role the caller has allows; a matching rule with ``defaultDeny`` refuses; a request
        no rule refused is allowed.  ``owner_roles`` join the roles once a rule that finds
        an owner (stopping or rebuilding a build) matched, and stay for the later rules."""
        held = set(roles)
        for index, rule in enumerate(self.allowRules):
            if not rule.matches(endpoint, self.match):
                continue
            if rule.finds_owner:
                held.update(owner_roles)
            for role in held:
                if self.match(role, rule.role):
                    return Decision(True, index, role)
            if rule.defaultDeny:
                return Decision(False, index)
        return Decision(True)

    def grants(self, details: dict, builders: Iterable[str]) -> list[Grant]:
        """Every scope Buildbot's decision gives the user of ``details`` on the configured
        ``builders`` (and on every target of the other kinds), with its origin."""
        roles = self.roles(details)
        owner_roles = {role: [repr(m)] for m in self.ownerRoleMatchers
                       for role in m.owner_roles(details, details.get("email"))}
        grants: list[Grant] = []
        for endpoint in endpoints(builders):
            decision = self.decide(endpoint, roles)
            owner_only = False
            if not decision.allowed and owner_roles:
                decision = self.decide(endpoint, roles, owner_roles)
                owner_only = decision.allowed
            if not decision.allowed:
                continue
            if decision.rule_index is None:
                rule, matchers, role = NO_RULE_REFUSES, (), ""
            else:
                rule = f"allowRules[{decision.rule_index}] {self.allowRules[decision.rule_index]!r}"
                role = decision.role
                matchers = tuple({**roles, **owner_roles}.get(role, ()))
            for scope in endpoint.scopes():
                grants.append(Grant(scope, rule, role, matchers, owner_only))
        return grants


def endpoints(builders: Iterable[str]) -> list[Endpoint]:
    """The control endpoints a decision is made for: per builder for the builder kinds,
    once (any target) for the others."""
    found = [Endpoint(READ)]
    for builder in builders:
        found += [Endpoint(kind, builder) for kind in BUILDER_KINDS]
    found += [Endpoint(kind) for kind in (ENABLE, SHUTDOWN, POLL)]
    return found


# Buildbot's names for what this module provides (util.<name>, buildbot.www.authz...).
fnmatchStrMatcher = fnmatch_strings  # noqa: N816 - Buildbot's name
reStrMatcher = re_strings  # noqa: N816 - Buildbot's name
ENDPOINT_MATCHERS = ("AnyEndpointMatcher", "AnyControlEndpointMatcher", "ForceBuildEndpointMatcher",
                     "StopBuildEndpointMatcher", "RebuildBuildEndpointMatcher",
                     "EnableSchedulerEndpointMatcher")
ROLE_MATCHERS = ("RolesFromUsername", "RolesFromEmails", "RolesFromGroups", "RolesFromOwner")
BUILDBOT_NAMES = ("Authz", "fnmatchStrMatcher", "reStrMatcher", *ENDPOINT_MATCHERS, *ROLE_MATCHERS)
