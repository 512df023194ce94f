"""``SecretManager``: asks the providers of ``c['secretsProviders']`` in order for a secret;
the first that holds it wins (Buildbot's ``SecretManager.get``)."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from twisted.internet import defer
from twisted.logger import Logger

from buildfarm.master.secrets.interfaces import ISecretProvider

log = Logger()


@dataclass
class FetchedSecrets:
    """What the providers answered for some names: ``values`` (name -> value) and, for each
    name they did not give, ``missing`` (name -> why, for the message that fails the step)."""

    values: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


class SecretManager:
    """The providers of one configuration, asked in order."""

    def __init__(self, providers: Sequence[ISecretProvider]):
        self.providers = list(providers)

    async def get(self, reactor, name: str) -> str | None:
        """The value of secret ``name`` from the first provider that has it, else None.  A
        provider that fails is skipped (and logged): the next ones may hold the secret."""
        value, _ = await self._lookup(reactor, name)
        return value

    async def fetch(self, reactor, names: Iterable[str]) -> FetchedSecrets:
        """Every one of ``names``: its value, or why there is none."""
        fetched = FetchedSecrets()
        for name in sorted(set(names)):
            value, failures = await self._lookup(reactor, name)
            if value is not None:
                fetched.values[name] = value
            else:
                fetched.missing[name] = self._why_missing(name, failures)
        return fetched

    async def _lookup(self, reactor, name: str) -> tuple[str | None, list[str]]:
        failures = []
        for provider in self.providers:
            try:
                value = await defer.ensureDeferred(provider.get(reactor, name))
            except Exception as e:  # noqa: BLE001 - reported with the secret that needed it
                log.warn("secrets provider {provider} failed for {name}: {why}",
                         provider=provider.name, name=name, why=str(e) or type(e).__name__)
                failures.append(str(e) or f"{provider.name}: {type(e).__name__}")
                continue
            if value is not None:
                return str(value), failures
        return None, failures

    def _why_missing(self, name: str, failures: list[str]) -> str:
        if not self.providers:
            return f"secret {name!r} is not found: c['secretsProviders'] configures no provider"
        asked = ", ".join(repr(p) for p in self.providers)
        why = f"secret {name!r} is not found in any provider ({asked})"
        return f"{why}; {'; '.join(failures)}" if failures else why
