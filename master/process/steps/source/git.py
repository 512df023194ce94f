"""``Git``, ``GitHub`` and ``GitLab``: git checkouts with Buildbot 4.3's arguments and
command sequences.

``mode='incremental'`` fetches into the existing clone (cloning when there is none);
``mode='full'`` starts from a clean tree: ``method`` ``fresh`` (the default: ``git clean
-f -f -d -x``, then fetch), ``clean`` (the same without ``-x``: ignored files stay),
``clobber`` (remove the directory, clone again) or ``copy`` (update a clone kept in
``source``, then copy it to the workdir).  ``got_revision`` is ``git rev-parse HEAD``.
"""

from __future__ import annotations

import re

from buildfarm.master.process.steps.source.base import (
    Patch,
    SlaveSetupError,
    Source,
    StepFailed,
)

GIT_HASH_LENGTHS = (40, 64)  # SHA-1 and SHA-256 repositories
COPY_SOURCE_DIR = "source"
SSH_PORT = 22
UNSUPPORTED_AUTH = ("sshPrivateKey", "sshHostKey", "sshKnownHosts", "auth_credentials", "git_credentials")

# git describe options of getDescription={...}: name -> the arguments for a value (None: none)
DESCRIBE_FLAGS = (
    ("all", lambda v: ["--all"] if v else None),
    ("always", lambda v: ["--always"] if v else None),
    ("contains", lambda v: ["--contains"] if v else None),
    ("debug", lambda v: ["--debug"] if v else None),
    ("long", lambda v: ["--long"] if v else None),
    ("exact-match", lambda v: ["--exact-match"] if v else None),
    ("tags", lambda v: ["--tags"] if v else None),
    ("first-parent", lambda v: ["--first-parent"] if v else None),
    ("match", lambda v: ["--match", v] if v else None),
    ("exclude", lambda v: ["--exclude", v] if v else None),
    ("abbrev", lambda v: [f"--abbrev={v}"] if _number_given(v) else None),
    ("candidates", lambda v: [f"--candidates={v}"] if _number_given(v) else None),
    ("dirty", lambda v: ["--dirty"] if v is True or v == "" else [f"--dirty={v}"] if v else None),
)


def _number_given(value) -> bool:
    """True for any true value and for the number 0 (but not for False)."""
    return bool(value) or (isinstance(value, int) and value is not False)


def url_from_scp_style(address: str, port: int = SSH_PORT) -> str:
    """``host:path`` as ``ssh://host:port/path``; URLs and local paths stay as they are."""
    if "://" in address or ":\\" in address or ":" not in address:
        return address
    host, path = address.split(":", 1)
    return f"ssh://{host}:{port}/{path}"


def git_version(text: str) -> tuple[int, ...] | None:
    """``(2, 39, 5)`` from ``git --version`` output, None if it is not git's."""
    match = re.match(r"^git version (\d+(?:\.\d+)*)", text.strip())
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


class Git(Source):
    """``steps.Git(repourl=..., branch='HEAD', mode='incremental', method=None, ...)``."""

    default_name = "git"
    renderables = Source.renderables + ("branch", "reference", "origin")

    def __init__(self, repourl=None, port=SSH_PORT, branch="HEAD", mode="incremental", method=None,
                 reference=None, submodules=False, remoteSubmodules=False, tags=False,  # noqa: N803
                 shallow=False, filters=None, progress=True, retryFetch=False,  # noqa: N803
                 clobberOnFailure=False, getDescription=False, config=None, origin=None,  # noqa: N803
                 **kwargs):
        self.unsupported = sorted(a for a in UNSUPPORTED_AUTH if kwargs.pop(a, None) is not None)
        super().__init__(mode=mode, method=method, **kwargs)
        self.repourl = repourl
        self.port = port
        self.branch = branch
        self.reference = reference
        self.submodules = submodules
        self.remoteSubmodules = remoteSubmodules
        self.tags = tags
        self.shallow = shallow
        self.filters = filters
        self.progress = progress
        self.retryFetch = retryFetch
        self.clobberOnFailure = clobberOnFailure
        self.getDescription = getDescription if getDescription or isinstance(getDescription, dict) else False
        self.config = config
        self.origin = origin
        self.revision: str | None = None
        self.features: tuple[int, ...] = ()

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        kind = type(self).__name__
        problems += [f"not supported by buildfarm: {kind}({a}=...) (Buildbot's steps.{kind} {a}); "
                     "give the slave's account the credentials (ssh-agent, ~/.ssh, a credential helper)"
                     for a in self.unsupported]
        if not self.repourl:
            problems.append(f"{kind}: must provide repourl")
        if isinstance(self.mode, str) and isinstance(self.method, str) and self.shallow and (
                self.mode != "full" or self.method != "clobber"):
            problems.append(f"{kind}: in mode 'full' shallow only possible with method 'clobber'")
        if not isinstance(self.getDescription, bool | dict):
            problems.append(f"{kind}: getDescription must be a boolean or a dict")
        if self.config is not None and not isinstance(self.config, dict):
            problems.append(f"{kind}: config must be a dict of git configuration settings")
        return problems

    # the sequence -----------------------------------------------------------------------

    async def run_vc(self, branch: str | None, revision: str | None, patch: Patch | None) -> None:
        self.repourl = url_from_scp_style(self.repourl, self.port)
        self.branch = branch or "HEAD"
        self.revision = revision
        self.method = self.effective_method()
        version = git_version((await self.git(["--version"], abandon=False)).stdout)
        if version is None:
            raise SlaveSetupError("git is not installed on the slave")
        self.features = version
        if await self.sourcedir_is_patched():
            await self.git(["clean", "-f", "-f", "-d", "-x"])
        if self.mode == "full":
            await self.mode_full()
        else:
            await self.mode_incremental()
        if patch is not None:
            await self.git(["update-index", "--refresh"])
            await self.apply_patch_file(patch, self.git_argv(["apply", "--index", "-p", str(patch.level)]))
        await self.parse_got_revision()
        await self.parse_commit_description()

    def effective_method(self) -> str | None:
        if self.mode == "incremental":
            return None
        return self.method or "fresh"

    async def mode_full(self) -> None:
        if self.method == "clobber":
            await self.clobber()
            return
        if self.method == "copy":
            await self.copy()
            return
        action = await self.sourcedir_state()
        if action == "clobber":
            await self.clobber()
        elif action == "clone":
            await self.full_clone_or_fallback()
        elif self.method == "clean":
            await self.clean()
        else:
            await self.fresh()

    async def mode_incremental(self) -> None:
        action = await self.sourcedir_state()
        if action == "clobber":
            await self.clobber()
            return
        if action == "clone":
            await self.full_clone_or_fallback()
            return
        await self.fetch_or_fallback()
        await self.sync_submodules()
        await self.update_submodules()

    async def clean(self) -> None:
        await self.git(["clean", "-f", "-f", "-d"])
        await self.fetch_or_fallback()
        await self.sync_submodules()
        await self.update_submodules()
        await self.clean_submodules()
        if self.submodules:
            await self.git(["clean", "-f", "-f", "-d"])

    async def fresh(self) -> None:
        clean = ["clean", "-f", "-f", "-d", "-x"]
        if (await self.git(clean, abandon=False)).rc == 0:
            await self.fetch_or_fallback()
        else:
            await self.remove_workdir()
            await self.full_clone_or_fallback()
        await self.sync_submodules()
        await self.update_submodules()
        await self.clean_submodules()
        if self.submodules:
            await self.git(clean)

    async def clobber(self) -> None:
        await self.remove_workdir()
        if await self.full_clone() != 0:
            raise StepFailed("git clone failed")

    async def copy(self) -> None:
        await self.remote.rmdir(self.workdir, abandon=False)
        target, self.workdir = self.workdir, COPY_SOURCE_DIR
        try:
            await self.mode_incremental()
        finally:
            self.workdir = target
        await self.remote.cpdir(COPY_SOURCE_DIR, target)

    async def sourcedir_state(self) -> str:
        """``update`` (a clone is there), ``clone`` (nothing there) or ``clobber`` (files but
        no clone)."""
        if not self.remote.version_at_least("listdir", "2.16"):
            return "update" if await self.remote.exists(f"{self.workdir}/.git") else "clone"
        files = await self.remote.listdir(self.workdir)
        if not files:
            return "clone"
        return "update" if ".git" in files else "clobber"

    async def remove_workdir(self) -> None:
        await self.remote.rmdir(self.workdir)

    # fetch and clone ----------------------------------------------------------------------

    async def fetch(self, abandon: bool = True) -> int | None:
        """Fetch ``branch`` (unless ``revision`` is already there) and check it out."""
        fetch_required = True
        if not self.tags and self.revision:
            fetch_required = (await self.git(["cat-file", "-e", self.revision], abandon=False)).rc != 0
        if fetch_required:
            command = ["fetch", "-f"]
            if self.shallow:
                command += ["--depth", str(int(self.shallow))]
            if self.tags:
                command.append("--tags")
            if self.progress and self.features >= (1, 7, 2):
                command.append("--progress")
            command += [self.repourl, self.branch]
            rc = (await self.git(command, abandon=abandon)).rc
            if rc != 0:
                return rc
        rc = (await self.git(["checkout", "-f", self.revision or "FETCH_HEAD"], abandon=abandon)).rc
        if rc == 0 and self.branch != "HEAD":
            await self.git(["checkout", "-B", self.branch], abandon=False)  # name the branch
        return rc

    async def fetch_or_fallback(self) -> None:
        """Fetch; when that fails, ``retryFetch`` tries once more and ``clobberOnFailure``
        clones afresh."""
        if await self.fetch(abandon=not self.retryFetch and not self.clobberOnFailure) == 0:
            return
        if self.retryFetch:
            self.remote.header("git fetch failed; retrying it (retryFetch)")
            await self.fetch()
        elif self.clobberOnFailure:
            await self.clobber()
        else:
            raise StepFailed("git fetch failed")

    def clone_command(self) -> tuple[list[str], bool]:
        """``git clone`` of ``repourl`` into the workdir, and whether the branch must still be
        fetched afterwards (a ``refs/...`` branch cannot be cloned directly)."""
        command = ["clone"]
        switch_to_branch = self.branch != "HEAD"
        if self.branch != "HEAD":
            if self.branch.startswith("refs/"):
                command.append("--no-checkout")
            else:
                switch_to_branch = False
                command += ["--branch", self.branch]
        if self.shallow:
            command += ["--depth", str(int(self.shallow))]
        if self.reference:
            command += ["--reference", self.reference]
        if self.origin:
            command += ["--origin", self.origin]
        if self.features >= (2, 27):  # older gits clone without the filters, as in Buildbot
            for spec in self.filters or ():
                command += ["--filter", spec]
        command += [self.repourl, "."]
        if self.progress and self.features >= (1, 7, 2):
            command.append("--progress")
        return command, switch_to_branch

    async def clone_once(self, abandon: bool) -> int | None:
        command, switch_to_branch = self.clone_command()
        rc = (await self.git(command, abandon=abandon and bool(self.shallow))).rc
        if switch_to_branch:
            rc = await self.fetch(abandon=abandon)
        return rc

    async def full_clone(self) -> int | None:
        """Clone (retrying as ``retry`` says), check out ``revision``, init the submodules."""
        rc = await self.retry_attempt(self.clone_once, self.remove_workdir)
        if rc != 0:
            return rc
        if self.revision:
            rc = (await self.git(["checkout", "-f", self.revision], abandon=bool(self.shallow))).rc
        if self.submodules:
            command = ["submodule", "update", "--init", "--recursive"]
            if self.remoteSubmodules:
                command.append("--remote")
            if self.shallow:
                command += ["--depth", str(int(self.shallow))]
            rc = (await self.git(command, abandon=bool(self.shallow))).rc
        return rc

    async def full_clone_or_fallback(self) -> None:
        if await self.full_clone() == 0:
            return
        if not self.clobberOnFailure:
            raise StepFailed("git clone failed")
        await self.clobber()

    # submodules ---------------------------------------------------------------------------

    async def sync_submodules(self) -> None:
        if self.submodules:
            await self.git(["submodule", "sync"])

    async def update_submodules(self) -> None:
        if self.submodules:
            command = ["submodule", "update", "--init", "--recursive"]
            command += ["--force"] if self.features >= (1, 7, 6) else []
            command += ["--checkout"] if self.features >= (1, 7, 8) else []
            if self.remoteSubmodules:
                command.append("--remote")
            await self.git(command)

    async def clean_submodules(self) -> None:
        if self.submodules:
            clean = "git clean -f -f -d" + (" -x" if self.mode == "full" and self.method == "fresh" else "")
            await self.git(["submodule", "foreach", "--recursive", clean])

    # results ------------------------------------------------------------------------------

    async def parse_got_revision(self) -> None:
        revision = (await self.git(["rev-parse", "HEAD"])).stdout.strip()
        if len(revision) not in GIT_HASH_LENGTHS:
            raise StepFailed(f"git rev-parse HEAD gave no commit id: {revision[:80]!r}")
        self.update_source_property("got_revision", revision)

    async def parse_commit_description(self) -> None:
        """``commit-description`` from ``git describe`` when ``getDescription`` asks for it
        (a failing describe is not an error, as in Buildbot)."""
        if self.getDescription is False:
            return
        command = ["describe"]
        if isinstance(self.getDescription, dict):
            for name, arguments in DESCRIBE_FLAGS:
                command += arguments(self.getDescription.get(name)) or []
        if not any(a.startswith("--dirty") for a in command):
            command.append("HEAD")
        result = await self.git(command, abandon=False)
        if result.rc == 0:
            self.update_source_property("commit-description", result.stdout.strip())

    # running git --------------------------------------------------------------------------

    def git_argv(self, command: list[str]) -> list[str]:
        argv = ["git"]
        for name, value in (self.config or {}).items():
            argv += ["-c", f"{name}={value}"]
        return argv + command

    async def git(self, command: list[str], abandon: bool = True, stdin: str | None = None):
        return await self.remote.shell(self.workdir, self.git_argv(command), stdin=stdin, abandon=abandon)


class GitHub(Git):
    """``Git`` for GitHub pull requests: a ``.../merge`` branch is built at its newest
    revision (the revision a change names is that of the pull request's head)."""

    default_name = "git"

    async def run_vc(self, branch, revision, patch) -> None:
        if branch and branch.endswith("/merge"):
            revision = None
        await super().run_vc(branch, revision, patch)


class GitLab(Git):
    """``Git`` for GitLab merge requests: a build with a ``target_branch`` property checks
    out the merge request's ``source_branch`` from its ``source_git_ssh_url``."""

    default_name = "git"

    async def run_vc(self, branch, revision, patch) -> None:
        properties = self.ctx.properties
        if properties.hasProperty("target_branch"):
            branch = properties.getProperty("source_branch")
            source = properties.getProperty("source_git_ssh_url")
            if source:
                self.repourl = source
            revision = None  # the merge request's commit is not in the target repository yet
        await super().run_vc(branch, revision, patch)
