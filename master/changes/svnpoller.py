"""``SVNPoller``: Buildbot's ``changes.SVNPoller``, polling a Subversion repository from the master.

Each poll asks ``svn info`` for the newest revision under ``repourl`` and ``svn log`` for the
revisions since the last poll (at most ``histmax``), oldest first.  A revision's paths are
made relative to ``repourl``; ``split_file(path)`` says which branch each belongs to (Buildbot's
contract: ``None`` to ignore the path, a ``(branch, path)`` tuple, or a dict with ``branch``,
``path`` and optionally ``project``/``repository``/``codebase``); the default puts every
path on the default branch (``None``).  One change is reported per revision and branch.  The
last revision reported is kept in the database, so a restart neither loses nor repeats a
change; the first poll only records the newest revision.
"""

import calendar
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from twisted.logger import Logger

from buildfarm.master.changes.base import DEFAULT_POLL_INTERVAL_S, LAST_REV_KEY, PollingChangeSource

log = Logger()

DEFAULT_HISTMAX = 100


def split_file_alwaystrunk(path: str) -> dict:
    """Every path is on the default branch (Buildbot's ``util.svn.split_file_alwaystrunk``)."""
    return {"path": path}


def split_file_branches(path: str) -> tuple[str | None, str] | None:
    """``trunk/x`` is on the default branch, ``branches/b/x`` on ``branches/b``; anything
    else is ignored (Buildbot's ``util.svn.split_file_branches``)."""
    pieces = path.split("/")
    if len(pieces) > 1 and pieces[0] == "trunk":
        return None, "/".join(pieces[1:])
    if len(pieces) > 2 and pieces[0] == "branches":
        return "/".join(pieces[0:2]), "/".join(pieces[2:])
    return None


def split_file_projects_branches(path: str) -> dict | None:
    """``project/trunk/x``, ``project/branches/b/x``: the project, then as ``split_file_branches``."""
    if "/" not in path:
        return None
    project, rest = path.split("/", 1)
    split = split_file_branches(rest)
    if split is None:
        return None
    branch, file = split
    return {"project": project, "branch": branch, "path": file}


class SVNPoller(PollingChangeSource):
    """Polls a Subversion URL (``repourl``) for new revisions."""

    kind = "SVNPoller"

    def __init__(self, repourl: str, split_file: Callable[[str], Any] | None = None,
                 svnuser: str | None = None, svnpasswd: str | None = None,
                 pollInterval: float = DEFAULT_POLL_INTERVAL_S, pollAtLaunch: bool = False,  # noqa: N803
                 histmax: int = DEFAULT_HISTMAX, svnbin: str = "svn", revlinktmpl: str = "",
                 category: Any = None, project: str = "", cachepath: str | None = None,
                 extra_args: list[str] | None = None, name: str | None = None, **kwargs):
        super().__init__(name=name or repourl, pollInterval=pollInterval, pollAtLaunch=pollAtLaunch,
                         project=project, category=category, **kwargs)
        self.repourl = repourl.rstrip("/") if isinstance(repourl, str) else repourl
        self.split_file = split_file or split_file_alwaystrunk
        self.svnuser = svnuser
        self.svnpasswd = svnpasswd
        self.histmax = histmax
        self.svnbin = svnbin
        self.revlinktmpl = revlinktmpl
        self.cachepath = cachepath
        self.extra_args = extra_args

    def config_problems(self) -> list[str]:
        problems = super().config_problems() + self.repourl_problems()
        if not callable(self.split_file):
            problems.append(f"SVNPoller {self.name!r}: split_file must be a callable, "
                            f"not {self.split_file!r}")
        if isinstance(self.histmax, bool) or not isinstance(self.histmax, int) or self.histmax < 1:
            problems.append(f"SVNPoller {self.name!r}: histmax must be a positive integer, "
                            f"not {self.histmax!r}")
        return problems

    def no_effect_args(self) -> list[str]:
        return super().no_effect_args() + [arg for arg in ("revlinktmpl", "cachepath") if getattr(self, arg)]

    # -- polling ---------------------------------------------------------------------------

    async def svn(self, *args: str) -> str:
        auth = [*(["--username", self.svnuser] if self.svnuser else []),
                *(["--password", self.svnpasswd] if self.svnpasswd else [])]
        return await self.run(self.svnbin, *args, "--non-interactive", "--no-auth-cache", *auth,
                              *(self.extra_args or []))

    async def poll(self) -> None:
        info = ET.fromstring(await self.svn("info", "--xml", self.repourl))
        newest = int(info.find("entry/commit").get("revision"))
        root = info.findtext("entry/repository/root").rstrip("/")
        prefix = unquote(self.repourl[len(root):]).strip("/") if self.repourl.startswith(root) else ""
        last = await self.get_state(LAST_REV_KEY)
        if last is None:
            await self.set_state(LAST_REV_KEY, newest)
            log.info("SVNPoller {name}: first poll, at revision {rev}", name=self.name, rev=newest)
            return
        if newest <= last:
            return
        first = max(last + 1, newest - self.histmax + 1)
        entries = ET.fromstring(await self.svn("log", "--xml", "--verbose", "-r", f"{first}:{newest}",
                                               self.repourl))
        for entry in entries.findall("logentry"):
            revision = int(entry.get("revision"))
            for change in self._changes(entry, prefix):
                await self.add_change(**change)
            await self.set_state(LAST_REV_KEY, revision)
        await self.set_state(LAST_REV_KEY, newest)

    def _changes(self, entry: ET.Element, prefix: str) -> list[dict]:
        """One change per branch the revision touched (in the order first touched)."""
        by_branch: dict[tuple, dict] = {}
        for element in entry.findall("paths/path"):
            path = (element.text or "").strip("/")
            if prefix:
                if path != prefix and not path.startswith(prefix + "/"):
                    continue
                path = path[len(prefix):].strip("/")
            if element.get("kind") == "dir" and path:
                path += "/"  # as Buildbot: a folder added or removed is a file ending in '/'
            split = self.split_file(path)
            if split is None:
                continue
            if isinstance(split, tuple):
                split = {"branch": split[0], "path": split[1]}
            key = (split.get("branch"), split.get("project"), split.get("repository"), split.get("codebase"))
            change = by_branch.setdefault(key, self._change(entry, split))
            if split.get("path"):
                change["files"].append(split["path"])
        return list(by_branch.values())

    def _change(self, entry: ET.Element, split: dict) -> dict:
        change = {"author": entry.findtext("author") or "", "revision": entry.get("revision"),
                  "comments": entry.findtext("msg") or "", "files": [], "branch": split.get("branch"),
                  "repository": split.get("repository") or self.repourl}
        for field in ("project", "codebase"):
            if split.get(field) is not None:
                change[field] = split[field]
        date = entry.findtext("date")
        if date:
            change["when_timestamp"] = float(calendar.timegm(time.strptime(date[:19], "%Y-%m-%dT%H:%M:%S")))
        return change
