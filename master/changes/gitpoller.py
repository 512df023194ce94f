"""``GitPoller``: Buildbot's ``changes.GitPoller``, polling a git repository from the master.

Each poll lists the remote's refs (``git ls-remote``), fetches the polled branches into a
bare repository in ``workdir`` (under refs of this poller's own, so pollers of different
repositories may share a workdir as in Buildbot), and reports every commit on each branch
since the last poll, oldest first, as a change.  The last revision seen on each branch is
kept in the database after each change, so a restart neither loses nor repeats a change.
The first poll of a repository reports nothing: it records where each branch stands.

``branches``: None (the remote's default branch, its HEAD), a list of branch names, True
(every branch), or a callable given each full ref name (``refs/heads/main``) that says whether
to poll it.  ``branch='main'`` is ``branches=['main']``.  ``only_tags=True`` polls the tags.
"""

import hashlib
import os
from collections.abc import Callable
from typing import Any

from buildfarm.master.changes.base import (
    DEFAULT_POLL_INTERVAL_S,
    LAST_REV_KEY,
    PollingChangeSource,
    VCSCommandFailed,
)

HEADS = "refs/heads/"
TAGS = "refs/tags/"
DEFAULT_WORKDIR = "gitpoller-work"
NO_PROMPT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true"}
# One field of ``git log --format`` per line; the message last (it may span lines).
COMMIT_FORMAT = "%H%n%an <%ae>%n%cn <%ce>%n%ct%n%B"


class GitPoller(PollingChangeSource):
    """Polls the branches of a git repository (``repourl``) for new commits."""

    kind = "GitPoller"

    def __init__(self, repourl: str, branches: list[str] | bool | Callable[[str], bool] | None = None,
                 branch: str | None = None, workdir: str | None = None,
                 pollInterval: float = DEFAULT_POLL_INTERVAL_S, pollAtLaunch: bool = False,  # noqa: N803
                 project: str = "", category: Any = None, name: str | None = None,
                 only_tags: bool = False, buildPushesWithNoCommits: bool = False,  # noqa: N803
                 gitbin: str = "git", fetch_refspec: Any = None, usetimestamps: bool = True,
                 encoding: str = "utf-8", sshPrivateKey: Any = None, sshHostKey: Any = None,  # noqa: N803
                 sshKnownHosts: Any = None, auth_credentials: Any = None,
                 git_credentials: Any = None, **kwargs):
        super().__init__(name=name or repourl, pollInterval=pollInterval, pollAtLaunch=pollAtLaunch,
                         project=project, category=category, **kwargs)
        self.repourl = repourl
        self.branch = branch
        self.branches = [branch] if branch is not None and branches is None else branches
        self.workdir = workdir or DEFAULT_WORKDIR
        self.only_tags = only_tags
        self.buildPushesWithNoCommits = buildPushesWithNoCommits
        self.gitbin = gitbin
        self.usetimestamps = usetimestamps
        self.encoding = encoding
        # Accepted so a Buildbot config loads; each one set is warned about (no_effect_args).
        self.fetch_refspec = fetch_refspec
        self.sshPrivateKey = sshPrivateKey
        self.sshHostKey = sshHostKey
        self.sshKnownHosts = sshKnownHosts
        self.auth_credentials = auth_credentials
        self.git_credentials = git_credentials

    def config_problems(self) -> list[str]:
        problems = super().config_problems() + self.repository_problems(branches_may_be_none=True)
        if self.branch is not None and self.branches is not None and self.branches != [self.branch]:
            problems.append(f"GitPoller {self.name!r}: give branch or branches, not both")
        return problems

    def no_effect_args(self) -> list[str]:
        ignored = ["fetch_refspec", "sshPrivateKey", "sshHostKey", "sshKnownHosts", "auth_credentials",
                   "git_credentials"]
        return super().no_effect_args() + [arg for arg in ignored if getattr(self, arg) is not None]

    # -- polling ---------------------------------------------------------------------------

    @property
    def _git_dir(self) -> str:
        return self.workdir_path(self.workdir)

    @property
    def _local_prefix(self) -> str:
        """Where this poller's fetched refs live in the shared workdir."""
        return "refs/buildfarm/" + hashlib.sha1(self.repourl.encode()).hexdigest()[:16] + "/"

    async def git(self, *args: str, cwd: str | None = None) -> str:
        # Never ask for a password on a terminal: a poll would hang until its deadline.
        return await self.run(self.gitbin, *(("--git-dir", self._git_dir) if cwd is None else ()), *args,
                              cwd=cwd, env=NO_PROMPT_ENV, encoding=self.encoding)

    async def poll(self) -> None:
        await self._init_workdir()
        refs = await self._remote_refs()
        polled = await self.polled_refs(refs)
        if not polled:
            return
        await self.git("fetch", "--quiet", "--no-tags", self.repourl,
                       *(f"+{ref}:{self._local_prefix}{ref}" for ref in polled))
        heads = {_branch_name(ref): (await self.git("rev-parse", f"{self._local_prefix}{ref}^{{commit}}"))
                 .strip() for ref in polled}
        await self.follow_heads(heads)

    async def _init_workdir(self) -> None:
        if not os.path.exists(os.path.join(self._git_dir, "HEAD")):
            await self.git("init", "--quiet", "--bare", self._git_dir, cwd="/")

    async def _remote_refs(self) -> dict[str, str]:
        """``{full ref name: sha}`` of the remote, and ``HEAD`` -> the branch it points at."""
        out = await self.git("ls-remote", "--symref", self.repourl, cwd=self._git_dir)
        refs: dict[str, str] = {}
        for line in out.splitlines():
            value, _, name = line.partition("\t")
            if value.startswith("ref: "):
                refs["HEAD"] = value[len("ref: "):]
            elif name != "HEAD" and not name.endswith("^{}"):
                refs.setdefault(name, value)
        return refs

    async def polled_refs(self, refs: dict[str, str]) -> list[str]:
        """The full names of the remote refs this poller follows."""
        branches = self.branches
        names = [name for name in refs if name != "HEAD"]
        if self.only_tags and branches is None:
            return sorted(n for n in names if n.startswith(TAGS))
        if branches is None:
            return [refs["HEAD"]] if refs.get("HEAD") in refs else []
        if branches is True:
            return sorted(n for n in names if n.startswith(HEADS))
        if callable(branches):
            return sorted(n for n in names if branches(n))
        wanted = [b if b.startswith("refs/") else HEADS + b for b in branches]
        return [ref for ref in wanted if ref in refs]

    async def _report(self, branch: str, head: str, last: dict[str, str]) -> None:
        """Report the commits on ``branch`` up to ``head`` that were not seen before."""
        seen = sorted({rev for rev in last.values() if rev})
        exclude = [f"^{rev}" for rev in seen if await self._known(rev)]
        out = await self.git("rev-list", "--reverse", head, *exclude)
        revisions = out.split()
        if not revisions and self.buildPushesWithNoCommits:
            revisions = [head]
        for revision in revisions:
            await self.add_change(**await self._change(revision, branch))
            last[branch] = revision
            await self.set_state(LAST_REV_KEY, last)

    async def _known(self, rev: str) -> bool:
        """Whether the workdir still has ``rev`` (a force-push may have dropped it)."""
        try:
            await self.git("cat-file", "-e", f"{rev}^{{commit}}")
        except VCSCommandFailed:
            return False
        return True

    async def _change(self, revision: str, branch: str) -> dict:
        out = await self.git("log", "--no-walk", f"--format={COMMIT_FORMAT}", revision)
        _rev, author, committer, timestamp, comments = (out.split("\n", 4) + [""] * 5)[:5]
        files = await self.git("diff-tree", "--root", "--no-commit-id", "--name-only", "-r", "-m",
                               "--first-parent", revision)
        when = float(timestamp) if self.usetimestamps and timestamp.strip() else None
        change = {"author": author, "committer": committer, "revision": revision, "branch": branch,
                  "comments": comments.rstrip("\n"), "files": files.splitlines(),
                  "repository": self.repourl}
        if when is not None:
            change["when_timestamp"] = when
        return change


def _branch_name(ref: str) -> str:
    """The change's branch: ``main`` for ``refs/heads/main``, else the ref as it is."""
    return ref[len(HEADS):] if ref.startswith(HEADS) else ref
