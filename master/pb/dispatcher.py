"""The Cred side of slave login: the password checker and the Dispatcher realm.

The checker accepts PB's challenge/response credentials and checks them against the
slaves in the current configuration.  The realm (the Dispatcher) hands the BotMaster the
connecting slave's mind; the BotMaster runs the whole attach sequence before the realm
returns the ``BuildSlave`` perspective, whose ``detached`` is the logout callback.

A login as a ``PBChangeSource``'s user (``buildbot sendchange``) is checked against that
source's password and gets a ``ChangePerspective`` (master/changes/pb.py), never a slave's.
"""

import secrets

from twisted.cred import credentials, error
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import IRealm
from twisted.internet import defer
from twisted.logger import Logger
from twisted.spread import pb
from zope.interface import implementer

from buildfarm.common.decoding import as_text
from buildfarm.master.auth.ratelimit import Limited, LoginLimiter
from buildfarm.master.changes.pb import ChangePerspective, PBChangeSource
from buildfarm.master.pb.interfaces import ISlaveRoster

log = Logger()


class LoginRefused(pb.Error, error.UnauthorizedLogin):
    """A refused slave login.  As a ``pb.Error`` PB sends it without logging a traceback;
    as an ``UnauthorizedLogin`` slaves (ours and stock workers) recognise it and retry."""



# The one answer to a refused login, whether the name or the password was wrong, so a peer
# cannot tell slave names from others; the master's log says which it was.
REFUSED_MESSAGE = "login refused: unknown slave name or wrong password"
LOGGED_NAME_MAX = 100  # characters of an unknown name that go to the log


@implementer(ICredentialsChecker)
class SlavePasswordChecker:
    """Checks a slave's PB login against the passwords of the configured slaves.

    With a ``LoginLimiter``, failed logins are limited per slave name and per source address
    (ratelimit.py): an over-limit login is refused before its password is looked at.  Only
    failures count and a slave that logged in before from the same address is never held
    back by its name's limit, so a slave reconnecting with the right password gets in.

    An unknown name is checked against a random password nobody knows, so it costs what a
    wrong password costs and gets the same answer (`REFUSED_MESSAGE`); the limits count it
    like any other name.
    """

    credentialInterfaces = (credentials.IUsernameHashedPassword,)

    def __init__(self, passwords, limiter: LoginLimiter | None = None, change_sources=None):
        """``passwords`` is a callable: slave name -> password, or None if unknown;
        ``change_sources`` a callable: login name -> its ``PBChangeSource``, or None."""
        self._passwords = passwords
        self._limiter = limiter
        self._change_sources = change_sources or (lambda name: None)
        self._nobodys_password = secrets.token_hex(16)

    def requestAvatarId(self, creds):  # noqa: N802 - Cred's interface
        name = as_text(creds.username)
        source = _peer_host(creds)
        if self._limiter is not None:
            try:
                self._limiter.begin(name, source)
            except Limited as e:
                log.warn("login refused for slave {name!r} from {source}: {why}", name=name, source=source,
                         why=str(e))
                return defer.fail(LoginRefused(f"{e} (slave {name!r})"))
        change_source = self._change_sources(name)
        password = change_source.passwd if change_source is not None else self._passwords(name)
        known = password is not None
        d = defer.maybeDeferred(
            creds.checkPassword, (password if known else self._nobodys_password).encode("utf-8"))
        d.addCallback(self._checked, name, known, source)
        if change_source is not None:
            d.addCallback(lambda _: ChangeLogin(name, change_source, getattr(creds, "broker", None)))
        return d

    def _checked(self, matched: bool, name: str, known: bool, source: str | None):
        if matched and known:
            if self._limiter is not None:
                self._limiter.succeeded(name, source)
            return name
        if known:
            log.warn("login refused for slave {name!r}: wrong password", name=name)
        else:
            log.warn("login refused for unknown slave {name!r}", name=name[:LOGGED_NAME_MAX])
        raise LoginRefused(REFUSED_MESSAGE)


class ChangeLogin:
    """The avatar id of a proven ``PBChangeSource`` login: its source, and the broker of its
    connection (a sendchange logs in without a mind, so the realm reaches it through this)."""

    def __init__(self, name: str, source: PBChangeSource, broker):
        self.name = name
        self.source = source
        self.broker = broker


def _peer_host(creds) -> str | None:
    """The address a PB login comes from: PB's challenger credentials carry their broker."""
    transport = getattr(getattr(creds, "broker", None), "transport", None)
    peer = transport.getPeer() if transport is not None else None
    return getattr(peer, "host", None)


# Attach sequences run at once at most; when a whole fleet logs in together the rest wait
# their turn, so the master never holds a thousand half-done sequences (their coroutines,
# Deferreds and messages), whose memory would stay fragmented after they finish.
ATTACH_CONCURRENCY = 32


@implementer(IRealm)
class Dispatcher:
    """The realm: turns an authenticated slave name and its mind into a perspective."""

    def __init__(self, botmaster: ISlaveRoster, concurrency: int = ATTACH_CONCURRENCY, trimmer=None,
                 add_change=None, clock=None):
        """``trimmer`` (a ``heap.HeapTrimmer``, optional) hears when no login is left in
        progress, so the heap a login burst left behind goes back to the system.
        ``add_change`` (``SchedulerManager.add_change``) and ``clock`` serve change logins."""
        self.botmaster = botmaster
        self._add_change = add_change
        self._clock = clock
        self._attaching = defer.DeferredSemaphore(concurrency)
        self._trimmer = trimmer
        self._in_progress = 0

    def requestAvatar(self, avatarId, mind, *interfaces):  # noqa: N802,N803 - Cred's interface
        if pb.IPerspective not in interfaces:
            raise NotImplementedError("slaves log in for a pb.IPerspective only")
        if isinstance(avatarId, ChangeLogin):
            return self._change_login(avatarId)
        if mind is None:
            return defer.fail(LoginRefused("a slave logs in with its bot as the PB client"))
        _lift_pre_login_limits(mind)
        name = as_text(avatarId)
        d = self._attaching.run(lambda: defer.ensureDeferred(self.botmaster.slave_attaching(name, mind)))
        d.addCallback(lambda slave: (pb.IPerspective, slave, lambda: slave.detached(mind)))
        self._in_progress += 1
        d.addBoth(self._login_done)
        return d

    def _change_login(self, login: ChangeLogin):
        if self._add_change is None:
            return defer.fail(LoginRefused("this port takes no changes"))
        if login.broker is not None:
            login.broker.authenticated()  # the pre-login limits end, as for a slave
        log.info("change source login as {name!r}", name=login.name)
        perspective = ChangePerspective(login.source, self._add_change, self._clock)
        return defer.succeed((pb.IPerspective, perspective, lambda: None))

    def _login_done(self, result):
        self._in_progress -= 1
        if self._in_progress == 0 and self._trimmer is not None:
            self._trimmer.settled()
        return result


def _lift_pre_login_limits(mind) -> None:
    """The slave proved its password: its connection gets an attached slave's limits (the
    attach sequence's answers, such as its info with its environment, are larger than a login)."""
    authenticated = getattr(getattr(mind, "broker", None), "authenticated", None)
    if authenticated is not None:
        authenticated()
