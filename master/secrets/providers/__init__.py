"""The secrets providers, one module each, at Buildbot's paths (``buildbot.secrets.providers.file``,
``buildbot.secrets.providers.passwordstore``)."""

from buildfarm.master.secrets.providers.file import SecretInAFile
from buildfarm.master.secrets.providers.passwordstore import SecretInPass

__all__ = ["SecretInAFile", "SecretInPass"]
