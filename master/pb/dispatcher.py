"""The Cred side of slave login: the password checker and the Dispatcher realm.

The checker accepts PB's challenge/response credentials and checks them against the
slaves in the current configuration.  The realm (the Dispatcher) hands the BotMaster the
connecting slave's mind; the BotMaster runs the whole attach sequence before the realm
returns the ``BuildSlave`` perspective, whose ``detached`` is the logout callback.
"""

from twisted.cred import credentials, error
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import IRealm
from twisted.internet import defer
from twisted.logger import Logger
from twisted.spread import pb
from zope.interface import implementer

from buildfarm.common.text import as_text
from buildfarm.master.auth.ratelimit import Limited, LoginLimiter

log = Logger()


class LoginRefused(pb.Error, error.UnauthorizedLogin):
    """A refused slave login.  As a ``pb.Error`` PB sends it without logging a traceback;
    as an ``UnauthorizedLogin`` slaves (ours and stock workers) recognise it and retry."""



@implementer(ICredentialsChecker)
class SlavePasswordChecker:
    """Checks a slave's PB login against the passwords of the configured slaves.

    With a ``LoginLimiter``, failed logins are limited per slave name and per source address
    (ratelimit.py): an over-limit login is refused before its password is looked at.  Only
    failures count and a slave that logged in before from the same address is never held
    back by its name's limit, so a slave reconnecting with the right password gets in.
    """

    credentialInterfaces = (credentials.IUsernameHashedPassword,)

    def __init__(self, passwords, limiter: LoginLimiter | None = None):
        """``passwords`` is a callable: slave name -> password, or None if unknown."""
        self._passwords = passwords
        self._limiter = limiter

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
        password = self._passwords(name)
        if password is None:
            log.warn("login refused for unknown slave {name!r}", name=name)
            return defer.fail(LoginRefused(f"unknown slave {name!r}"))
        d = defer.maybeDeferred(creds.checkPassword, password.encode("utf-8"))
        d.addCallback(self._checked, name, source)
        return d

    def _checked(self, matched: bool, name: str, source: str | None):
        if not matched:
            log.warn("login refused for slave {name!r}: wrong password", name=name)
            raise LoginRefused(f"wrong password for slave {name!r}")
        if self._limiter is not None:
            self._limiter.succeeded(name, source)
        return name


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

    def __init__(self, botmaster, concurrency: int = ATTACH_CONCURRENCY, trimmer=None):
        """``trimmer`` (a ``heap.HeapTrimmer``, optional) hears when no login is left in
        progress, so the heap a login burst left behind goes back to the system."""
        self.botmaster = botmaster
        self._attaching = defer.DeferredSemaphore(concurrency)
        self._trimmer = trimmer
        self._in_progress = 0

    def requestAvatar(self, avatarId, mind, *interfaces):  # noqa: N802,N803 - Cred's interface
        if pb.IPerspective not in interfaces:
            raise NotImplementedError("slaves log in for a pb.IPerspective only")
        name = as_text(avatarId)
        d = self._attaching.run(lambda: defer.ensureDeferred(self.botmaster.slave_attaching(name, mind)))
        d.addCallback(lambda slave: (pb.IPerspective, slave, lambda: slave.detached(mind)))
        self._in_progress += 1
        d.addBoth(self._login_done)
        return d

    def _login_done(self, result):
        self._in_progress -= 1
        if self._in_progress == 0 and self._trimmer is not None:
            self._trimmer.settled()
        return result
