"""Build properties and the renderables that read them, with Buildbot's names.

A build's ``Properties`` hold ``name -> (value, source)``: from the build request (the
scheduler or force form), the builder's and the slave's configured properties, and the
build itself (``buildername``, ``buildnumber``, ``slavename``/``workername``, ...); steps
add more (``SetProperty``, ``SetPropertyFromCommand``).  Step arguments may be
renderables (``Property``, ``Interpolate``, ``WithProperties``, ``@renderer``), rendered
against the build's properties when the step runs.

Secrets (``Secret('name')``, ``%(secret:name)s`` in an ``Interpolate``) render from the values
the build fetched from ``c['secretsProviders']`` before its steps run (``secret_names``
finds which it needs; ``Properties.add_secrets`` stores them); each value rendered is given
to the build's ``SecretRedactor``, which replaces it by ``<name>`` in everything the build
stores (``cleanupTextFromSecrets``).  A secret no provider gave fails the step rendering
it with ``SecretNotFound``, whose message names the secret.
"""

import re
from collections.abc import Callable, Iterator
from typing import Any

from buildfarm.master.secrets.redactor import SecretRedactor


class Renderable:
    """Something whose value is known only when a build runs."""

    def render(self, properties: "Properties") -> Any:
        raise NotImplementedError


class SecretNotFound(Exception):
    """A step renders a secret that no provider gave (the message names it and why)."""


class Properties:
    """A build's properties: ``name -> (value, source)``; and the secrets the build fetched."""

    def __init__(self, **initial):
        self._values: dict[str, tuple[Any, str]] = {}
        self._secrets: dict[str, str] = {}
        self._missing_secrets: dict[str, str] = {}
        self.redactor = SecretRedactor()
        for name, value in initial.items():
            self.setProperty(name, value, "initial")

    def getProperty(self, name: str, default=None):  # noqa: N802 - Buildbot's names
        """The value of a property, or ``default``."""
        return self._values[name][0] if name in self._values else default

    def hasProperty(self, name: str) -> bool:  # noqa: N802
        return name in self._values

    has_key = hasProperty

    def getPropertySource(self, name: str) -> str | None:  # noqa: N802
        return self._values[name][1] if name in self._values else None

    def setProperty(self, name: str, value, source: str) -> None:  # noqa: N802
        """Set a property, remembering where the value came from."""
        self._values[name] = (value, source)

    def update(self, values: dict, source: str) -> None:
        """Set several properties from one source."""
        for name, value in values.items():
            self.setProperty(name, value, source)

    def asDict(self) -> dict[str, tuple[Any, str]]:  # noqa: N802
        """Every property as ``name -> (value, source)``."""
        return dict(self._values)

    def values(self) -> dict[str, Any]:
        """Every property as ``name -> value``."""
        return {name: value for name, (value, _) in self._values.items()}

    def __getitem__(self, name: str):
        return self._values[name][0]

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def add_secrets(self, values: dict[str, str], missing: dict[str, str]) -> None:
        """Secrets fetched for the build: their values, and why the others have none."""
        self._secrets.update(values)
        self._missing_secrets.update(missing)
        for name in values:
            self._missing_secrets.pop(name, None)

    def secret(self, name: str) -> str:
        """The value of secret ``name``, remembered for redaction; ``SecretNotFound`` if the
        build has none."""
        if name not in self._secrets:
            raise SecretNotFound(self._missing_secrets.get(
                name, f"secret {name!r} was not fetched for this build (only secrets named in "
                      f"the steps' arguments, util.Secret or %(secret:...)s, are fetched)"))
        value = self._secrets[name]
        self.useSecret(value, name)
        return value

    def useSecret(self, secret_value: str, secret_name: str) -> None:  # noqa: N802 - Buildbot's names
        """Redact ``secret_value`` as ``<secret_name>`` in what the build stores."""
        self.redactor.add(secret_value, secret_name)

    def cleanupTextFromSecrets(self, text: str) -> str:  # noqa: N802
        """``text`` with the values of the secrets the build rendered replaced by ``<name>``."""
        return self.redactor.redact(text)

    def render(self, value):
        """``value`` with every renderable inside it (lists, tuples, dicts) rendered."""
        if isinstance(value, Renderable):
            return self.render(value.render(self))
        if isinstance(value, list):
            return [self.render(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.render(v) for v in value)
        if isinstance(value, dict):
            return {self.render(k): self.render(v) for k, v in value.items()}
        return value


class Property(Renderable):
    """The value of one property: ``util.Property('branch', default='main')``."""

    def __init__(self, name: str, default=None, defaultWhenFalse: bool = True):  # noqa: N803
        self.name = name
        self.default = default
        self.defaultWhenFalse = defaultWhenFalse

    def render(self, properties: Properties):
        value = properties.getProperty(self.name)
        if value is None or (self.defaultWhenFalse and not value):
            return properties.render(self.default)
        return value


class Secret(Renderable):
    """The value of a secret from ``c['secretsProviders']``: ``util.Secret('token')``."""

    def __init__(self, secret_name: str):
        self.secret_name = secret_name

    def __repr__(self) -> str:
        return f"Secret({self.secret_name!r})"

    def render(self, properties: Properties) -> str:
        return properties.secret(self.secret_name)


# %(prop:name)s, %(prop:name:-default)s, %(prop:name:~default)s, %(prop:name:+present)s,
# %(prop:name:?|yes|no)s; %(kw:name)s for keyword arguments of Interpolate; %(secret:name)s.
_INTERPOLATION = re.compile(r"%\((prop|kw|src|slave|worker|secret):([^):]*)(?::([-~+?#])([^)]*))?\)s")


class Interpolate(Renderable):
    """A string with ``%(prop:name)s`` and ``%(kw:name)s`` substitutions (Buildbot syntax)."""

    def __init__(self, fmtstring: str, *args, **kwargs):
        self.fmtstring = fmtstring
        self.args = args
        self.kwargs = kwargs

    def render(self, properties: Properties) -> str:
        text = _INTERPOLATION.sub(lambda m: self._substitute(m, properties), self.fmtstring)
        if self.args:
            text = text % tuple(properties.render(a) for a in self.args)
        return text

    def _substitute(self, match: re.Match, properties: Properties) -> str:
        kind, name, op, arg = match.groups()
        if kind == "kw":
            present = name in self.kwargs
            value = properties.render(self.kwargs.get(name))
        elif kind == "secret":
            present, value = True, properties.secret(name)
        elif kind in ("slave", "worker"):
            present = properties.hasProperty(f"slave_info_{name}")
            value = properties.getProperty(f"slave_info_{name}")
        else:
            present = properties.hasProperty(name)
            value = properties.getProperty(name)
        return _apply_operator(op, arg, present, value)


def _apply_operator(op: str | None, arg: str, present: bool, value) -> str:
    if op is None:
        return "" if value is None else str(value)
    if op == "-":
        return str(value) if present and value is not None else arg
    if op == "~":
        return str(value) if value else arg
    if op == "+":
        return arg if present else ""
    if op in ("?", "#"):
        parts = arg[1:].split(arg[0]) if arg else ["", ""]
        truthy = bool(value) if op == "?" else present
        return parts[0] if truthy else (parts[1] if len(parts) > 1 else "")
    raise ValueError(f"unknown interpolation operator {op!r}")


class WithProperties(Renderable):
    """The older form: ``WithProperties('%(branch)s-%(got_revision)s')`` or with ``%s`` names."""

    def __init__(self, fmtstring: str, *args, **lambda_subs):
        self.fmtstring = fmtstring
        self.args = args
        self.lambda_subs = lambda_subs

    def render(self, properties: Properties) -> str:
        if self.args:
            return self.fmtstring % tuple(properties.getProperty(a, "") for a in self.args)
        values = _PropertyMapping(properties, self.lambda_subs)
        return self.fmtstring % values


class _PropertyMapping(dict):
    def __init__(self, properties: Properties, lambda_subs: dict):
        super().__init__()
        self.properties = properties
        self.lambda_subs = lambda_subs

    def __getitem__(self, key: str):
        if key in self.lambda_subs:
            return self.lambda_subs[key](self.properties.values())
        for op in (":-", ":~"):
            if op in key:
                name, default = key.split(op, 1)
                value = self.properties.getProperty(name)
                return value if (value if op == ":~" else value is not None) else default
        value = self.properties.getProperty(key)
        return "" if value is None else value


class _FunctionRenderable(Renderable):
    def __init__(self, function: Callable[[Properties], Any]):
        self.function = function

    def render(self, properties: Properties):
        return self.function(properties)


def renderer(function: Callable[[Properties], Any]) -> Renderable:
    """Decorator: a function of the build's properties, used as a step argument."""
    return _FunctionRenderable(function)


def secret_names(value: Any) -> set[str]:
    """The names of the secrets ``value`` renders (``Secret``, ``%(secret:name)s``), looked
    for in lists, tuples, dicts, renderables and step objects (their attributes)."""
    return {name for item in _walk(value, set()) for name in _secrets_of(item)}


def _secrets_of(item: Any) -> Iterator[str]:
    if isinstance(item, Secret) and isinstance(item.secret_name, str):
        yield item.secret_name
    elif isinstance(item, Interpolate) and isinstance(item.fmtstring, str):
        yield from (m.group(2) for m in _INTERPOLATION.finditer(item.fmtstring) if m.group(1) == "secret")


_WALK_DEPTH = 12  # how deep step objects and their arguments are searched for secrets


def _walk(value: Any, seen: set[int], depth: int = 0) -> Iterator[Any]:
    if depth > _WALK_DEPTH or id(value) in seen or isinstance(value, str | bytes | int | float | None):
        return
    seen.add(id(value))
    yield value
    if isinstance(value, dict):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        children = list(value)
    elif hasattr(value, "__dict__") and not isinstance(value, type) and not callable(value):
        children = list(vars(value).values())
        # attributes a step class sets (``command = [...]`` on a subclass), not the instance
        own_classes = [c for c in type(value).__mro__
                       if not c.__module__.startswith(("buildfarm.", "builtins"))]
        children += [v for cls in own_classes for k, v in vars(cls).items()
                     if not k.startswith("__") and isinstance(v, Renderable | list | tuple | dict)]
    else:
        return
    for child in children:
        yield from _walk(child, seen, depth + 1)
