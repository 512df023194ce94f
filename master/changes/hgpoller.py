"""``HgPoller``: Buildbot's ``changes.HgPoller``, polling a Mercurial repository from the master.

Each poll pulls ``repourl`` into a local repository in ``workdir`` (``hg pull``), then reports
every changeset on each polled branch since the last poll, oldest first.  The last changeset
seen on each branch is kept in the database after each change, so a restart neither loses
nor repeats a change; the first poll only records where each branch stands.

``branches``: a list of named branches (default ``['default']``; ``branch='x'`` is
``['x']``), True (every named branch), or a callable given a branch name.
"""

import json
import os
from collections.abc import Callable
from typing import Any

from buildfarm.master.changes.base import DEFAULT_POLL_INTERVAL_S, LAST_REV_KEY, PollingChangeSource

DEFAULT_WORKDIR = "hgpoller-work"
DEFAULT_BRANCH = "default"


class HgPoller(PollingChangeSource):
    """Polls the named branches of a Mercurial repository (``repourl``) for new changesets."""

    kind = "HgPoller"

    def __init__(self, repourl: str, branch: str | None = None,
                 branches: list[str] | bool | Callable[[str], bool] | None = None,
                 bookmarks: list[str] | None = None, workdir: str | None = None,
                 pollInterval: float = DEFAULT_POLL_INTERVAL_S, pollAtLaunch: bool = False,  # noqa: N803
                 hgbin: str = "hg", usetimestamps: bool = True, category: Any = None, project: str = "",
                 encoding: str = "utf-8", name: str | None = None, revlink: Any = None, **kwargs):
        super().__init__(name=name or repourl, pollInterval=pollInterval, pollAtLaunch=pollAtLaunch,
                         project=project, category=category, **kwargs)
        self.repourl = repourl
        self.branch = branch
        if branches is None:
            branches = [branch] if branch is not None else ([] if bookmarks else [DEFAULT_BRANCH])
        self.branches = branches
        self.bookmarks = bookmarks
        self.workdir = workdir or DEFAULT_WORKDIR
        self.hgbin = hgbin
        self.usetimestamps = usetimestamps
        self.encoding = encoding
        self.revlink = revlink

    def config_problems(self) -> list[str]:
        return super().config_problems() + self.repository_problems(branches_may_be_none=False)

    def no_effect_args(self) -> list[str]:
        return super().no_effect_args() + [arg for arg in ("bookmarks", "revlink") if getattr(self, arg)]

    # -- polling ---------------------------------------------------------------------------

    async def hg(self, *args: str) -> str:
        return await self.run(self.hgbin, "--noninteractive", "--repository", self.workdir_path(self.workdir),
                              *args, env={"HGPLAIN": "1"}, encoding=self.encoding)

    async def poll(self) -> None:
        path = self.workdir_path(self.workdir)
        if not os.path.exists(os.path.join(path, ".hg")):
            await self.run(self.hgbin, "init", path)
        await self.hg("pull", "--quiet", self.repourl)
        heads = await self._branch_heads()
        await self.follow_heads(dict(sorted(heads.items())))

    async def _branch_heads(self) -> dict[str, str]:
        """``{branch: its tip-most head}`` for the polled branches that exist."""
        entries = json.loads(await self.hg("log", "-r", "head() and not closed()", "-T", "json") or "[]")
        heads: dict[str, str] = {}
        for entry in sorted(entries, key=lambda e: e["rev"]):
            branch = entry["branch"]
            if self._follows(branch):
                heads[branch] = entry["node"]  # the highest revision wins
        return heads

    def _follows(self, branch: str) -> bool:
        branches = self.branches
        if branches is True:
            return True
        if callable(branches):
            return bool(branches(branch))
        return branch in branches

    async def _report(self, branch: str, head: str, last: dict[str, str]) -> None:
        known = [rev for rev in sorted(set(last.values())) if rev]
        revset = f"only({head}, {' + '.join(known)})" if known else f"::{head}"
        entries = json.loads(await self.hg("log", "-v", "-r", f"sort({revset}, rev)", "-T", "json") or "[]")
        for entry in entries:
            change = {"author": entry["user"], "revision": entry["node"], "branch": branch,
                      "comments": entry["desc"], "files": list(entry.get("files") or []),
                      "repository": self.repourl}
            if self.usetimestamps:
                change["when_timestamp"] = float(entry["date"][0])
            await self.add_change(**change)
            last[branch] = entry["node"]
            await self.set_state(LAST_REV_KEY, last)
