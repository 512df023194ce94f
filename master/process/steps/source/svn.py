"""``SVN``: Subversion checkouts with Buildbot 4.3's arguments and command sequences.

``mode='incremental'`` runs ``svn update`` in a working copy of ``repourl`` (checking out
when there is none, or when it is of another URL); ``mode='full'`` methods: ``fresh`` (the
default: remove unversioned and ignored files, update), ``clean`` (unversioned files only),
``clobber`` (check out afresh), ``copy`` and ``export`` (update a working copy kept in
``source``, then copy or ``svn export`` it).  ``got_revision`` comes from ``svn info --xml``.

Differs from Buildbot: the ``password`` is given to ``svn`` on its standard input
(``--password-from-stdin``, svn 1.10 and later), never on the command line, so it is in no log.
"""

from __future__ import annotations

import re
import xml.dom.minidom
import xml.parsers.expat
from urllib.parse import quote, unquote, urlparse, urlunparse

from buildfarm.master.process.steps.source.base import (
    Patch,
    SlaveSetupError,
    Source,
    StepFailed,
)

COPY_SOURCE_DIR = "source"
DEFAULT_PORTS = {"http": "80", "https": "443", "svn": "3690"}
UNFINISHED_OPERATION = "E155037:"  # svn: previous operation has not finished; run 'cleanup'
_COLLAPSE = re.compile(r"([^/]+/\.\./?|/\./|//|/\.$|/\.\.$|^/\.\.)")
_AUTHORITY = re.compile(r"^(?:([^@]+)@)?([^:]+)(?::(.+))?$")


def canonical_svn_url(uri: str) -> str:
    """A URL as ``svn info`` writes it (lower-case scheme and host, no default port, no
    ``.``/``..``/``//`` in the path, percent-encoding normalised, no trailing slash)."""
    if not uri or uri == "/":
        return uri
    scheme, authority, path, parameters, query, fragment = urlparse(uri)
    scheme = scheme.lower()
    if authority:
        match = _AUTHORITY.match(authority)
        if not match:
            return uri
        userinfo, host, port = match.groups()
        authority = host.rstrip(".").lower()
        if userinfo:
            authority = f"{userinfo}@{authority}"
        if port and port != DEFAULT_PORTS.get(scheme):
            authority = f"{authority}:{port}"
    if scheme in DEFAULT_PORTS:
        while (collapsed := _COLLAPSE.sub("/", path, 1)) != path:
            path = collapsed
    path = quote(unquote(path), "!$&'()*+,-./:=@_~", encoding="latin-1")
    url = urlunparse((scheme, authority, path, parameters, query, fragment))
    if url != "/" and url.endswith("/") and not url.endswith("//"):
        return url[:-1]
    return url


def parse_xml(text: str):
    try:
        return xml.dom.minidom.parseString(text)
    except xml.parsers.expat.ExpatError as e:
        raise StepFailed(f"svn wrote corrupted XML: {e}") from None


def unversioned_files(status_xml: str, keep: list[str]) -> list[str]:
    """The paths ``svn status --xml`` lists, but externals, missing files and ``keep``."""
    paths = []
    for entry in parse_xml(status_xml).getElementsByTagName("entry"):
        [status] = entry.getElementsByTagName("wc-status")
        if status.getAttribute("item") in ("external", "missing"):
            continue
        path = entry.getAttribute("path")
        if path and path not in keep:
            paths.append(path)
    return paths


class SVN(Source):
    """``steps.SVN(repourl=..., mode='incremental', method=None, username=None,
    password=None, extra_args=None, keep_on_purge=None, depth=None, preferLastChangedRev=False)``."""

    default_name = "svn"
    methods = ("clean", "fresh", "clobber", "copy", "export")
    renderables = Source.renderables + ("password", "username")

    def __init__(self, repourl=None, mode="incremental", method=None, username=None, password=None,
                 extra_args=None, keep_on_purge=None, depth=None, preferLastChangedRev=False,  # noqa: N803
                 **kwargs):
        super().__init__(mode=mode, method=method, **kwargs)
        self.repourl = repourl
        self.username = username
        self.password = password
        self.extra_args = extra_args
        self.keep_on_purge = list(keep_on_purge or [])
        self.depth = depth
        self.preferLastChangedRev = preferLastChangedRev
        self.revision: str | None = None

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        if self.repourl is None:
            problems.append("SVN: you must provide repourl")
        if self.extra_args is not None and not isinstance(self.extra_args, list | tuple):
            problems.append("SVN: extra_args must be a list of arguments")
        return problems

    async def run_vc(self, branch: str | None, revision: str | None, patch: Patch | None) -> None:
        self.revision = revision
        self.method = None if self.mode == "incremental" else self.method or "fresh"
        if (await self.remote.shell(self.workdir, ["svn", "--version"], abandon=False)).rc != 0:
            raise SlaveSetupError("SVN is not installed on the slave")
        if await self.sourcedir_is_patched():
            await self.purge(ignore_ignores=False)
        if self.mode == "full":
            await self.mode_full()
        else:
            await self.mode_incremental()
        if patch is not None:
            await self.apply_patch_file(patch, ["patch", f"-p{patch.level}", "--remove-empty-files",
                                                "--force", "--forward"])
        await self.parse_got_revision()

    async def mode_full(self) -> None:
        if self.method == "clobber":
            await self.clobber()
        elif self.method in ("copy", "export"):
            await self.copy()
        elif not await self.updatable():
            await self.clobber()
        else:
            await self.purge(ignore_ignores=self.method == "fresh")
            await self.svn(self.update_command())

    async def mode_incremental(self) -> None:
        if await self.updatable():
            await self.svn(self.update_command())
        else:
            await self.clobber()

    def update_command(self) -> list[str]:
        return ["update", *(["--revision", str(self.revision)] if self.revision else [])]

    async def clobber(self) -> None:
        await self.remote.rmdir(self.workdir)
        await self.checkout()

    async def checkout(self) -> None:
        command = ["checkout", self.repourl, "."]
        if self.revision:
            command += ["--revision", str(self.revision)]

        async def attempt(abandon: bool) -> int | None:
            return (await self.svn(command, abandon=abandon)).rc

        async def cleanup() -> None:
            await self.remote.rmdir(self.workdir)

        if await self.retry_attempt(attempt, cleanup) != 0:
            raise StepFailed("svn checkout failed")

    async def copy(self) -> None:
        await self.remote.rmdir(self.workdir)
        source = self.copy_source_dir()
        target, self.workdir = self.workdir, source
        try:
            await self.mode_incremental()
        finally:
            self.workdir = target
        if self.method == "copy":
            await self.remote.cpdir(source, target)
            return
        command = ["svn", "export", *(["--revision", str(self.revision)] if self.revision else [])]
        command += self.auth_arguments() + list(self.extra_args or []) + [source, target]
        await self.remote.shell("", command, stdin=self.stdin())

    def copy_source_dir(self) -> str:
        """Where ``copy`` and ``export`` keep their working copy (one per codebase)."""
        return f"{COPY_SOURCE_DIR}/{self.codebase}" if self.codebase else COPY_SOURCE_DIR

    async def updatable(self) -> bool:
        """A working copy of ``repourl`` is there (``svn info`` names the same URL)."""
        if not await self.remote.exists(f"{self.workdir}/.svn"):
            return False
        info = await self.svn(["info", "--xml"], abandon=False)
        if UNFINISHED_OPERATION in info.stderr:
            return False
        try:
            url = parse_xml(info.stdout).getElementsByTagName("url")[0].firstChild.nodeValue
        except (IndexError, AttributeError):
            raise StepFailed("svn info --xml names no URL") from None
        return url == canonical_svn_url(self.repourl)

    async def purge(self, ignore_ignores: bool) -> None:
        """Remove what ``svn status`` shows: unversioned files, and ignored ones too."""
        command = ["status", "--xml", *(["--no-ignore"] if ignore_ignores else [])]
        status = await self.svn(command)
        paths = [f"{self.workdir}/{p}" for p in unversioned_files(status.stdout, self.keep_on_purge)]
        if paths and await self.remote.rmdir(paths, abandon=False) != 0:
            raise StepFailed("could not remove the unversioned files")

    async def parse_got_revision(self) -> None:
        directory = self.copy_source_dir() if self.method == "export" else self.workdir
        info = await self.remote.shell(directory, ["svn", "info", "--xml"])
        document = parse_xml(info.stdout)
        revision = None
        if self.preferLastChangedRev:
            commits = document.getElementsByTagName("commit")
            revision = commits[0].getAttribute("revision") if commits else None
        if not revision:
            entries = document.getElementsByTagName("entry")
            revision = entries[0].getAttribute("revision") if entries else None
        if not revision:
            raise StepFailed("svn info --xml names no revision")
        self.remote.header(f"Got SVN revision {revision}")
        self.update_source_property("got_revision", revision)

    def auth_arguments(self) -> list[str]:
        arguments = ["--username", self.username] if self.username else []
        return arguments + (["--password-from-stdin"] if self.password is not None else [])

    def stdin(self) -> str | None:
        return None if self.password is None else f"{self.password}\n"

    async def svn(self, command: list[str], abandon: bool = True):
        argv = ["svn", *command, "--non-interactive", "--no-auth-cache", *self.auth_arguments()]
        if self.depth:
            argv += ["--depth", self.depth]
        argv += list(self.extra_args or [])
        return await self.remote.shell(self.workdir, argv, abandon=abandon, stdin=self.stdin())
