"""Buildbot's ``c['www']['auth']``: ``util.UserPasswordAuth``, ``util.HTPasswdAuth`` and
``util.RemoteUserAuth``, made into buildfarm accounts.

The users of ``UserPasswordAuth`` and ``HTPasswdAuth`` become accounts like those of
``c['users']``: they log in the same ways (HTTP basic on the API, the ``/login`` page, the
same login limits), and their scopes are what ``c['www']['authz']`` grants them
(master/auth/authz.py).  ``RemoteUserAuth`` trusts a header that a fronting proxy sets
(``REMOTE_USER`` by default) on requests from the proxy's addresses only
(``c['www']['trusted_proxies']``); each name it carries becomes an account when first seen.

htpasswd files: bcrypt (``$2y$``, ``$2b$``, ``$2a$``), ``{SHA}`` (base64 SHA-1), MD5
``$apr1$`` and the system's ``crypt`` entries (DES, ``$1$``, ``$5$``, ``$6$``; libc's).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from buildfarm.master.auth.secret import Secret, SecretError, resolve_secret
from buildfarm.master.configobject import ConfigObject

DEFAULT_REMOTE_USER_HEADER = b"REMOTE_USER"
DEFAULT_REMOTE_USER_REGEX = rb"(?P<username>[^ @]+)@(?P<realm>[^ @]+)"
BCRYPT_PREFIXES = ("$2y$", "$2b$", "$2a$")
SHA_PREFIX = "{SHA}"
APR1_PREFIX = "$apr1$"


class AuthBase(ConfigObject):
    """A ``c['www']['auth']`` kind."""

    def __init__(self):
        self._remember_config_line()


class NoAuth(AuthBase):
    """``util.NoAuth()``: nobody logs in through ``c['www']['auth']`` (c['users'] still do)."""


class UserPasswordAuth(AuthBase):
    """``util.UserPasswordAuth({'alice': 'pw', ...})`` or ``([('alice', 'pw'), ...])``;
    a password may also be ``{'file': path}`` or ``{'env': NAME}`` (master/auth/secret.py)."""

    def __init__(self, users):
        super().__init__()
        self.users = users

    def entries(self, basedir: str | None) -> tuple[list[tuple[str, Secret]], list[str]]:
        """(name, password) pairs and the problems found."""
        pairs = self.users.items() if isinstance(self.users, dict) else self.users
        if not isinstance(pairs, list | tuple) and not isinstance(self.users, dict):
            return [], ["UserPasswordAuth takes a dict {user: password} or a list of (user, password)"]
        found, problems = [], []
        for pair in pairs:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                problems.append(f"UserPasswordAuth: {pair!r} is not a (user, password) pair")
                continue
            name, password = (v.decode() if isinstance(v, bytes) else v for v in pair)
            if not _good_name(name):
                problems.append("UserPasswordAuth: a user name must be a non-empty string without ':', "
                                f"not {name!r}")
                continue
            if hasattr(password, "getRenderingFor"):
                problems.append(f"UserPasswordAuth: user {name!r}: util.Secret is not supported here; "
                                "give {'file': path} or {'env': NAME}")
                continue
            try:
                found.append((name, resolve_secret(password, basedir, f"UserPasswordAuth: user {name!r}")))
            except SecretError as e:
                problems.append(str(e))
        return found, problems


class HTPasswdAuth(AuthBase):
    """``util.HTPasswdAuth(file)``: users and password hashes from an Apache htpasswd file
    (relative to the master's basedir)."""

    def __init__(self, file):
        super().__init__()
        self.file = file

    def entries(self, basedir: str | None) -> tuple[list[tuple[str, str]], list[str]]:
        """(name, hash) pairs and the problems found (read when the configuration loads)."""
        if not isinstance(self.file, str):
            return [], [f"HTPasswdAuth: file must be a path, not {self.file!r}"]
        path = os.path.join(basedir or ".", os.path.expanduser(self.file))
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            return [], [f"HTPasswdAuth: cannot read {self.file}: {getattr(e, 'strerror', None) or e}"]
        found, problems = [], []
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, colon, encoded = line.strip().partition(":")
            why = htpasswd_format_problem(encoded) if colon and _good_name(name) else "not user:hash"
            if why:
                problems.append(f"HTPasswdAuth: {self.file} line {number}: {why}")
            else:
                found.append((name, encoded))
        return found, problems


class RemoteUserAuth(AuthBase):
    """``util.RemoteUserAuth(header=b'REMOTE_USER', headerRegex=...)``: the user a fronting
    proxy names in ``header``; ``headerRegex`` must have a ``username`` group (``email``,
    ``groups`` or other groups become the user's details).  Only requests from
    ``c['www']['trusted_proxies']`` are believed."""

    def __init__(self, header=DEFAULT_REMOTE_USER_HEADER, headerRegex=DEFAULT_REMOTE_USER_REGEX):  # noqa: N803
        super().__init__()
        self.header = header.encode() if isinstance(header, str) else header
        self.headerRegex = headerRegex.encode() if isinstance(headerRegex, str) else headerRegex

    def problems(self) -> list[str]:
        if not isinstance(self.header, bytes) or not self.header:
            return [f"RemoteUserAuth: header must be a header name, not {self.header!r}"]
        try:
            regex = re.compile(self.headerRegex)
        except (re.error, TypeError) as e:
            return [f"RemoteUserAuth: headerRegex is not a regular expression: {e}"]
        if "username" not in regex.groupindex:
            return ["RemoteUserAuth: headerRegex needs a (?P<username>...) group"]
        return []

    def details(self, value: bytes) -> dict | None:
        """The user details a header value carries, None when it does not match."""
        found = re.match(self.headerRegex, value)
        if found is None or not found.group("username"):
            return None
        details = {k: v.decode("utf-8", "replace") for k, v in found.groupdict().items() if v is not None}
        details.setdefault("email", details["username"])
        if "groups" in details:
            details["groups"] = [g for g in re.split(r"[,\s]+", details["groups"]) if g]
        return details


def _good_name(name) -> bool:
    return isinstance(name, str) and bool(name) and ":" not in name


# -- htpasswd hashes -------------------------------------------------------------------------

def htpasswd_format_problem(encoded: str) -> str | None:
    """Why ``encoded`` is not an htpasswd hash this master checks, or None."""
    if encoded.startswith(BCRYPT_PREFIXES):
        return None if len(encoded) == 60 else "a bcrypt hash is 60 characters"
    if encoded.startswith(SHA_PREFIX):
        try:
            ok = len(base64.b64decode(encoded[len(SHA_PREFIX):], validate=True)) == 20
        except ValueError:
            ok = False
        return None if ok else "a {SHA} hash is base64 of 20 bytes"
    if encoded.startswith(APR1_PREFIX):
        return None if encoded.count("$") == 3 else "an $apr1$ hash is $apr1$salt$hash"
    if not encoded:
        return "no hash"
    return None  # crypt(3): checked by the system's crypt


def verify_htpasswd(password: str, encoded: str) -> bool:
    """Whether ``password`` matches an htpasswd entry's hash (bcrypt is slow: run this off
    the reactor thread)."""
    if encoded.startswith(BCRYPT_PREFIXES):
        import bcrypt
        # bcrypt only knows $2b$/$2a$; $2y$ (Apache's name) is the same algorithm.
        return bcrypt.checkpw(password.encode(), ("$2b$" + encoded[4:]).encode())
    if encoded.startswith(SHA_PREFIX):
        digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
        return hmac.compare_digest(digest, encoded[len(SHA_PREFIX):])
    if encoded.startswith(APR1_PREFIX):
        salt = encoded[len(APR1_PREFIX):].split("$", 1)[0]
        return hmac.compare_digest(apr1(password, salt), encoded)
    return _crypt_matches(password, encoded)


def _crypt_matches(password: str, encoded: str) -> bool:
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # the stdlib's libc crypt(3), present up to Python 3.12
    made = crypt.crypt(password, encoded)
    return made is not None and hmac.compare_digest(made, encoded)


APR1_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def apr1(password: str, salt: str) -> str:
    """Apache's MD5 crypt (``$apr1$salt$hash``), as ``htpasswd -m`` makes it."""
    pw, salt_b = password.encode(), salt[:8].encode()
    alternate = hashlib.md5(pw + salt_b + pw).digest()
    ctx = hashlib.md5(pw + APR1_PREFIX.encode() + salt_b)
    for i in range(len(pw), 0, -16):
        ctx.update(alternate[:min(16, i)])
    i = len(pw)
    while i:
        ctx.update(b"\0" if i & 1 else pw[:1])
        i >>= 1
    final = ctx.digest()
    for i in range(1000):
        step = hashlib.md5()
        step.update(pw if i & 1 else final)
        if i % 3:
            step.update(salt_b)
        if i % 7:
            step.update(pw)
        step.update(final if i & 1 else pw)
        final = step.digest()
    encoded = ""
    for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        value = (final[a] << 16) | (final[b] << 8) | final[c]
        for _ in range(4):
            encoded += APR1_ALPHABET[value & 0x3F]
            value >>= 6
    value = final[11]
    for _ in range(2):
        encoded += APR1_ALPHABET[value & 0x3F]
        value >>= 6
    return f"{APR1_PREFIX}{salt[:8]}${encoded}"


# Buildbot's names for what this module provides (util.<name>, buildbot.www.auth.<name>).
BUILDBOT_NAMES = ("UserPasswordAuth", "HTPasswdAuth", "RemoteUserAuth")
