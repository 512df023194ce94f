"""``SecretInAFile``: each secret is a file of a directory, its name the secret's name.

As Buildbot 4.3: ``SecretInAFile(dirname, suffixes=None, strip=True)``; a file named
``<name><suffix>`` (for each of ``suffixes``, default ``[""]``) holds secret ``name``;
``strip`` removes the trailing newlines (``\\r`` and ``\\n``).  The directory must exist and
no file the provider would read may be readable, writable or executable by others
(``chmod o-rwx``): otherwise master.cfg does not load.  Unlike Buildbot, which reads every
file when the configuration is loaded, a file is read when a build asks for its secret (in
a thread), so a changed file is used by the next build without a reconfig.
"""

import os
import stat

from twisted.internet import threads
from zope.interface import implementer

from buildfarm.master.configobject import ConfigObject
from buildfarm.master.secrets.interfaces import ISecretProvider, SecretProviderError

OTHERS_MODE_BITS = 0o007  # a secret file must grant nothing to "others"


@implementer(ISecretProvider)
class SecretInAFile(ConfigObject):
    """Secrets in the files of ``dirname`` (``util.Secret('token')`` reads ``dirname/token``)."""

    name = "SecretInAFile"

    def __init__(self, dirname, suffixes=None, strip=True):
        self._remember_config_line()
        self.dirname = dirname
        self.suffixes = [""] if suffixes is None else suffixes
        self.strip = strip

    def __repr__(self) -> str:
        return f"SecretInAFile({self.dirname!r})"

    def config_problems(self) -> list[str]:
        if not isinstance(self.dirname, str) or not self.dirname:
            return [f"SecretInAFile: dirname must be a directory's path, not {self.dirname!r}"]
        if not isinstance(self.suffixes, list | tuple) or not all(isinstance(s, str) for s in self.suffixes):
            return [f"SecretInAFile: suffixes must be a list of strings, not {self.suffixes!r}"]
        if not os.path.isdir(self.dirname):
            return [f"SecretInAFile: directory {self.dirname} does not exist"]
        problems = []
        for filename in sorted(os.listdir(self.dirname)):
            if any(filename.endswith(suffix) for suffix in self.suffixes):
                mode = stat.S_IMODE(os.stat(os.path.join(self.dirname, filename)).st_mode)
                if mode & OTHERS_MODE_BITS:
                    problems.append(f"SecretInAFile: permissions {oct(mode)} on file {filename} in "
                                    f"{self.dirname} are too open: secret files must not be accessible "
                                    f"by others (chmod o-rwx)")
        return problems

    def get(self, reactor, name: str):
        return threads.deferToThread(self.read, name)

    def read(self, name: str) -> str | None:
        """The value of secret ``name`` read from its file (blocking: call it in a thread)."""
        # Only names the directory lists are read, so '../x' or 'a/b' never leave it.
        present = set(os.listdir(self.dirname))
        for suffix in self.suffixes:
            filename = name + suffix
            path = os.path.join(self.dirname, filename)
            if filename in present and os.path.isfile(path):
                mode = stat.S_IMODE(os.stat(path).st_mode)
                if mode & OTHERS_MODE_BITS:
                    raise SecretProviderError(f"SecretInAFile: permissions {oct(mode)} on file {filename} "
                                              f"in {self.dirname} are too open (chmod o-rwx)")
                with open(path, encoding="utf-8") as source:
                    value = source.read()
                return value.rstrip("\r\n") if self.strip else value
        return None
