"""``Secret``: a secret value read from master.cfg, a file or the environment.

A secret (a password, a hash, a token) is a string, ``{'file': path}`` (the file's content,
stripped; relative paths are taken from the master's basedir) or ``{'env': NAME}``.
Secrets are read once when the configuration loads, and never logged nor shown: ``Secret``
hides its value from ``repr`` and ``str``.  Every comparison of a secret is made in constant
time (:func:`hmac.compare_digest`).
"""

import hmac
import os


class SecretError(ValueError):
    """A secret that cannot be read (a missing file, an unset variable, a bad spec)."""


class Secret:
    """A secret value that does not show itself in logs, reprs or JSON."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "master.cfg"):
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def matches(self, given: str) -> bool:
        """Whether ``given`` equals the secret, compared in constant time."""
        return hmac.compare_digest(given.encode("utf-8"), self._value.encode("utf-8"))

    def __repr__(self) -> str:
        return f"<secret from {self.source}>"

    __str__ = __repr__


def is_secret_spec(value) -> bool:
    """Whether ``value`` is written as ``{'file': path}`` or ``{'env': NAME}``."""
    return isinstance(value, dict) and len(value) == 1 and set(value) <= {"file", "env"}


def resolve_secret(spec, basedir: str | None, what: str) -> Secret:
    """The ``Secret`` a string, ``{'file': path}`` or ``{'env': NAME}`` stands for."""
    if isinstance(spec, Secret):
        return spec
    if isinstance(spec, str):
        if not spec:
            raise SecretError(f"{what} must not be empty")
        return Secret(spec)
    if not is_secret_spec(spec) or not isinstance(next(iter(spec.values())), str):
        raise SecretError(f"{what} must be a string, {{'file': path}} or {{'env': NAME}}")
    if "env" in spec:
        value = os.environ.get(spec["env"])
        if not value:
            raise SecretError(f"{what}: environment variable {spec['env']} is not set")
        return Secret(value, f"${spec['env']}")
    path = os.path.join(basedir or ".", os.path.expanduser(spec["file"]))
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read().strip()
    except OSError as e:
        raise SecretError(f"{what}: cannot read {spec['file']}: {e.strerror}") from None
    if not value:
        raise SecretError(f"{what}: {spec['file']} is empty")
    return Secret(value, spec["file"])
