"""``SecretInPass``: secrets in a ``pass`` password store (https://www.passwordstore.org/).

As Buildbot 4.3: ``SecretInPass(gpgPassphrase=None, dirname=None)``; secret ``name`` is the
first line of ``pass name``, run with ``PASSWORD_STORE_DIR=dirname`` when given and the
passphrase of the store's GnuPG key passed to gpg when given.  ``pass`` must be on the
master's PATH and ``dirname``, when given, must exist, or master.cfg does not load.  A
``pass`` that exits non-zero or writes to its standard error holds no such secret.

Differences: the passphrase goes to gpg on its standard input (``--batch --pinentry-mode
loopback --passphrase-fd 0``), not on its command line as Buildbot's ``--passphrase``: so
other users of the machine cannot read it in ``ps``, a passphrase may hold spaces (pass
splits ``PASSWORD_STORE_GPG_OPTS`` at them), and GnuPG 2 uses it (it ignores a passphrase
given without loopback pinentry).  A ``pass`` that has not answered within ``PASS_TIMEOUT_S``
is killed and reported.
"""

import os
import shutil

from twisted.internet import defer, protocol
from zope.interface import implementer

from buildfarm.common.deadline import with_deadline
from buildfarm.master.configobject import ConfigObject
from buildfarm.master.secrets.interfaces import ISecretProvider, SecretProviderError

PASS_TIMEOUT_S = 30.0
PASS_EXECUTABLE = "pass"


class _PassOutput(protocol.ProcessProtocol):
    """Gathers one ``pass`` run's output; ``done`` fires with ``(rc, stdout, stderr)``."""

    def __init__(self, stdin: bytes = b""):
        self.stdin = stdin
        self.done: defer.Deferred = defer.Deferred(self._kill)
        self.stdout: list[bytes] = []
        self.stderr: list[bytes] = []

    def connectionMade(self):  # noqa: N802 - Twisted's names
        if self.stdin:
            self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data: bytes):  # noqa: N802
        self.stdout.append(data)

    def errReceived(self, data: bytes):  # noqa: N802
        self.stderr.append(data)

    def processEnded(self, reason):  # noqa: N802
        if not self.done.called:
            self.done.callback((reason.value.exitCode, b"".join(self.stdout), b"".join(self.stderr)))

    def _kill(self, _):
        try:
            self.transport.signalProcess("KILL")
        except Exception:  # noqa: BLE001, S110 - it ended meanwhile
            pass


@implementer(ISecretProvider)
class SecretInPass(ConfigObject):
    """Secrets in the ``pass`` store at ``dirname`` (default: pass's own, ~/.password-store)."""

    name = "SecretInPass"

    def __init__(self, gpgPassphrase=None, dirname=None):  # noqa: N803 - Buildbot's names
        self._remember_config_line()
        self.gpgPassphrase = gpgPassphrase  # noqa: N815
        self.dirname = dirname

    def __repr__(self) -> str:
        return f"SecretInPass(dirname={self.dirname!r})"

    def config_problems(self) -> list[str]:
        problems = []
        if shutil.which(PASS_EXECUTABLE) is None:
            problems.append("SecretInPass: pass does not exist in PATH (install the 'pass' package)")
        if self.gpgPassphrase is not None and not isinstance(self.gpgPassphrase, str):
            problems.append("SecretInPass: gpgPassphrase must be a string")
        if self.dirname is not None and not (isinstance(self.dirname, str) and os.path.isdir(self.dirname)):
            problems.append(f"SecretInPass: directory {self.dirname} does not exist")
        return problems

    def environment(self) -> dict[str, str]:
        """The environment ``pass`` runs in: the master's, with the store and passphrase."""
        env = dict(os.environ)
        if self.gpgPassphrase:
            env["PASSWORD_STORE_GPG_OPTS"] = "--batch --pinentry-mode loopback --passphrase-fd 0"
        if self.dirname:
            env["PASSWORD_STORE_DIR"] = self.dirname
        return env

    async def get(self, reactor, name: str) -> str | None:
        if not name or name.startswith("-"):
            return None  # not a pass-name (pass itself refuses names that leave the store)
        output = _PassOutput(f"{self.gpgPassphrase}\n".encode() if self.gpgPassphrase else b"")
        executable = shutil.which(PASS_EXECUTABLE, path=os.environ.get("PATH"))
        if executable is None:
            raise SecretProviderError("SecretInPass: pass does not exist in PATH")
        reactor.spawnProcess(output, executable, [PASS_EXECUTABLE, "show", name], env=self.environment())

        def timed_out():
            return SecretProviderError(f"SecretInPass: pass did not answer within {PASS_TIMEOUT_S:g} s")

        rc, stdout, stderr = await with_deadline(output.done, PASS_TIMEOUT_S, reactor, timed_out)
        if rc != 0 or stderr:
            return None
        lines = stdout.decode("utf-8", "ignore").splitlines()
        return lines[0] if lines else None
