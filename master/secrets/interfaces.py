"""``ISecretProvider``: what a secrets provider of ``c['secretsProviders']`` is."""

from zope.interface import Attribute, Interface


class ISecretProvider(Interface):
    """A source of secret values, asked by name (Buildbot's ``SecretProviderBase``)."""

    name = Attribute("The provider's kind as messages show it (``SecretInAFile``)")

    def config_problems():
        """What is wrong with the provider's arguments or its store (a missing directory, a
        file others may read), as a list of messages; checked when master.cfg is loaded
        (in the loader's thread, so it may read the disk)."""

    def get(reactor, name):
        """A Deferred firing with the value of secret ``name``, or None when this provider
        does not hold it.  Never blocks ``reactor``'s thread; fails (with a message naming
        the provider) only when the store itself cannot be read."""


class SecretProviderError(Exception):
    """A provider's store cannot be read (its message names the provider and why)."""
