"""Redaction: secrets in environments, slave info and log headers replaced by a marker.

One set of rules serves the slave (its ShellCommand log headers) and the master (the JSON
API, the web UI, and log headers from stock Buildbot workers).  A value is secret

* by its **name**: the name is split into word parts (on ``_``, ``-``, ``.`` and camelCase
  boundaries) and one part is a secret word (`SECRET_WORDS`: ``DB_PASS``, ``GITHUB_PAT``,
  ``SSH_PRIVATE_KEY``) or ends with a secret suffix (`SECRET_SUFFIXES`: ``PGPASSWORD``,
  ``GITHUBTOKEN``).  Whole parts only, so ``KEYBOARD_LAYOUT``, ``MONKEY`` and ``PATH`` are
  not secret; a few well-known harmless names are listed in `HARMLESS_NAMES`;
* by its **shape**, whatever the name: the password of a URL's userinfo (the URL stays, only
  the password goes), PEM private key blocks, and tokens with a known prefix (`TOKEN_PATTERN`),
  plus a 40-character AWS secret key on a line that also holds an AWS access key id.

Secret-named values become `REDACTED` whole; shapes are replaced where they occur.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from buildfarm.common.decoding import as_text

REDACTED = "<redacted>"

# A name part equal to one of these makes the value secret.
SECRET_WORDS = frozenset({
    "PASS", "PASSWD", "PASSWORD", "PASSWORDS", "PWD", "PASSPHRASE",
    "SECRET", "SECRETS", "TOKEN", "TOKENS", "KEY", "KEYS", "APIKEY", "PAT",
    "AUTH", "CREDENTIAL", "CREDENTIALS", "CREDS", "PRIVATE", "COOKIE", "COOKIES",
    "SESSION", "DSN",
})
# A name part ending with one of these makes the value secret (PGPASSWORD, CLIENTSECRET).
SECRET_SUFFIXES = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "APIKEY", "CREDENTIALS")
# Well-known variables a secret word names without holding a secret (their values are still
# redacted by shape).
HARMLESS_NAMES = frozenset({
    "PWD", "OLDPWD", "SSH_AUTH_SOCK", "DESKTOP_SESSION", "SESSION_MANAGER",
    "DBUS_SESSION_BUS_ADDRESS", "XDG_SESSION_ID", "XDG_SESSION_TYPE", "XDG_SESSION_CLASS",
    "XDG_SESSION_DESKTOP", "XDG_SESSION_PATH",
})

_NAME_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")
_CAMEL_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

# scheme://user:PASSWORD@host: the password ends at the last "@" before the path.
# (A scheme is short: bounding it keeps the search linear on long runs of "a-a-a-...".)
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s:/?#@]*:)"
                           r"(?P<password>[^\s/?#]+)(?P<tail>@)")
_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|\Z)",
    re.DOTALL)
_NOT_BEFORE = r"(?<![A-Za-z0-9_-])"
TOKEN_PATTERN = re.compile(_NOT_BEFORE + r"(?:" + "|".join((
    r"gh[pousr]_[A-Za-z0-9]{20,}",                       # GitHub classic tokens
    r"github_pat_[A-Za-z0-9_]{20,}",                     # GitHub fine-grained tokens
    r"glpat-[A-Za-z0-9_-]{20,}",                         # GitLab personal access tokens
    r"xox[abprs]-[A-Za-z0-9-]{10,}",                     # Slack
    r"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])",         # AWS access key ids
    r"npm_[A-Za-z0-9]{30,}",                             # npm
    r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}",         # Stripe
    r"AIza[A-Za-z0-9_-]{35}",                            # Google API keys
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",  # JWTs
    r"pypi-[A-Za-z0-9_-]{50,}",                          # PyPI
)) + r")")
_AWS_KEY_ID = re.compile(_NOT_BEFORE + r"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")
# An AWS secret access key: 40 base64 characters with both cases (a hex digest has one).
_AWS_SECRET_KEY = re.compile(r"(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[A-Z])"
                             r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])")
# A log header's environment entry, as Buildbot and buildfarm slaves write it: "  NAME=value".
_HEADER_VARIABLE = re.compile(r"^  (?P<name>[A-Za-z_][A-Za-z0-9_.-]*)=")


def name_parts(name: str) -> list[str]:
    """The upper-case word parts of ``name``: split on non-alphanumerics and camelCase."""
    return [part.upper() for chunk in _NAME_SEPARATORS.split(name) for part in _CAMEL_PARTS.findall(chunk)]


def is_secret_name(name: str) -> bool:
    """Whether a variable or key called ``name`` holds a secret (see the module docstring)."""
    if name.upper() in HARMLESS_NAMES:
        return False
    return any(part in SECRET_WORDS or part.endswith(SECRET_SUFFIXES) for part in name_parts(name))


def redact_value(text: str) -> str:
    """``text`` with every secret shape in it replaced: URL passwords, PEM private keys,
    known tokens, and AWS secret keys on a line that holds an AWS access key id."""
    text = _PEM_PRIVATE_KEY.sub(REDACTED, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m["head"] + REDACTED + m["tail"], text)
    if _AWS_KEY_ID.search(text):
        text = "\n".join(_AWS_SECRET_KEY.sub(REDACTED, line) if _AWS_KEY_ID.search(line) else line
                         for line in text.split("\n"))
    return TOKEN_PATTERN.sub(REDACTED, text)


def redact_variable(name: str, value: Any) -> Any:
    """The shown value of a variable or key ``name``: `REDACTED` for a secret name (unless it
    is None), else ``value`` redacted by shape (dicts and lists throughout)."""
    if is_secret_name(name):
        return value if value is None else REDACTED
    return redact_structure(value)


def redact_structure(value: Any) -> Any:
    """``value`` with its strings redacted by shape and its dicts' entries by name too."""
    if isinstance(value, Mapping):
        return {key: redact_variable(as_text(key), item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_structure(item) for item in value]
    if isinstance(value, str | bytes):
        return redact_value(as_text(value))
    return value


def redact_environ(environ: Mapping) -> dict:
    """An environment (``{name: value}``) as it may be shown."""
    return redact_structure(environ)


def redact_info(info: Mapping) -> dict:
    """A slave's reported info (getSlaveInfo/getWorkerInfo: its ``environ``, info files,
    OS keys) as it may be shown."""
    return redact_structure(info)


def redact_log_header(text: str) -> str:
    """A log header as it may be shown: the value of each "  NAME=value" entry with a secret
    name is replaced (with the lines that continue it), every secret shape anywhere too."""
    lines, hiding = [], False
    for line in redact_value(text).split("\n"):
        entry = _HEADER_VARIABLE.match(line)
        if entry:
            hiding = is_secret_name(entry["name"])
            lines.append(entry.group(0) + REDACTED if hiding else line)
        elif hiding and not line.startswith(" "):
            lines.append(REDACTED if line else line)  # a multi-line secret value goes on here
        else:
            hiding = False
            lines.append(line)
    return "\n".join(lines)
