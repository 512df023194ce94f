"""``GitHubStatusPush`` and ``GitHubCommentPush`` (Buildbot's ``reporters.github``).

``GitHubStatusPush`` POSTs ``/repos/{owner}/{repo}/statuses/{sha}`` for each source stamp
of the build (its ``revision``; owner and name from the ``project`` when it reads
"owner/name", else from the ``repository`` URL), with ``state`` (pending at the start;
success, failure or error at the end: see ``STATES``), ``context`` (default
``buildbot/<buildername>``), ``description`` (the report's body: "Build started." /
"Build done.") and ``target_url`` (the build's page).  The token goes in
``Authorization: token <token>``; a description longer than GitHub takes (140 characters)
is cut.  ``GitHubCommentPush`` POSTs the report's body as a comment
on the pull request the build is for (``/repos/{owner}/{repo}/issues/{n}/comments``; the
number from a branch ``refs/pull/<n>/merge`` or ``.../head``, else from the ``github.number``
property), nothing at the start by default.  See forge.py for answers and retries.
"""

import re

from buildfarm.common.results import CANCELLED, EXCEPTION, FAILURE, RETRY, SKIPPED, SUCCESS, WARNINGS
from buildfarm.master.process.properties import Properties
from buildfarm.master.reporters.forge import (
    ForgeStatusPush,
    log_skipped,
    parse_repository_url,
    sourcestamps_of,
)
from buildfarm.master.reporters.generators.build import BuildStartEndStatusGenerator
from buildfarm.master.reporters.message import MessageFormatterRenderable

HOSTED_BASE_URL = "https://api.github.com"
# GitHub refuses (422) a status whose description is longer: it is cut to fit.
MAX_DESCRIPTION_CHARS = 140
STATES = {SUCCESS: "success", WARNINGS: "success", SKIPPED: "success", FAILURE: "failure",
          EXCEPTION: "error", CANCELLED: "error", RETRY: "pending"}
PULL_REQUEST_BRANCH = re.compile(r"refs/pull/([0-9]+)/(?:head|merge)")


def github_state(build: dict) -> str:
    """The state GitHub accepts for the build: pending until it ends, then ``STATES``."""
    if not build.get("complete"):
        return "pending"
    return STATES.get(build.get("results"), "error")


def shortened(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def pull_request_number(props: Properties) -> str | None:
    """The pull request a build is for: from its branch (``refs/pull/<n>/merge``), else the
    ``github.number`` property (Buildbot's GitHub hook sets both)."""
    match = PULL_REQUEST_BRANCH.search(str(props.getProperty("branch") or ""))
    if match:
        return match.group(1)
    number = props.getProperty("github.number")
    return str(number) if isinstance(number, int | str) and str(number).isdigit() else None


def github_repository(sourcestamp: dict) -> tuple[str, str] | None:
    """(owner, name): the ``project`` when it reads "owner/name", else from ``repository``."""
    project = sourcestamp.get("project") or ""
    if project.count("/") == 1 and all(project.split("/")):
        owner, repo = project.split("/")
        return owner, repo
    parsed = parse_repository_url(sourcestamp.get("repository"))
    return (parsed.owner, parsed.repo) if parsed else None


class GitHubStatusPush(ForgeStatusPush):
    """A commit status on GitHub per build start and end (see the module's docstring)."""

    hosted_base_url = HOSTED_BASE_URL

    def auth_headers(self, token: str) -> dict:
        return {"Authorization": f"token {token}"}

    def requests_for(self, report, build, props, context) -> list[tuple[str, dict]]:
        requests = []
        for stamp in sourcestamps_of(build):
            target = self._target(stamp, build, context)
            if target is None:
                continue
            (owner, repo), sha = target
            body = {"state": github_state(build), "target_url": build["url"], "context": context}
            if report.get("body") is not None:
                body["description"] = shortened(str(report["body"]), MAX_DESCRIPTION_CHARS)
            requests.append((f"/repos/{owner}/{repo}/statuses/{sha}", body))
        return requests

    def _target(self, stamp: dict, build: dict, context) -> tuple[tuple[str, str], str] | None:
        repository, sha = github_repository(stamp), stamp.get("revision")
        if repository is None or not sha:
            log_skipped(self.name, build, stamp, "no owner/name or no revision", context=context)
            return None
        return repository, sha


class GitHubCommentPush(GitHubStatusPush):
    """The report's body as a comment on the build's pull request (module's docstring)."""

    def default_context(self):
        return ""

    def default_generators(self) -> list:
        return comment_generators()

    def requests_for(self, report, build, props, context) -> list[tuple[str, dict]]:
        if report.get("body") is None:
            return []
        number = pull_request_number(props)
        if number is None:
            log_skipped(self.name, build, {}, "the build is for no pull request")
            return []
        requests = []
        for stamp in sourcestamps_of(build):
            target = self._target(stamp, build, context)
            if target is not None:
                (owner, repo), _sha = target
                requests.append((f"/repos/{owner}/{repo}/issues/{number}/comments",
                                 {"body": str(report["body"])}))
        return requests


def comment_generators() -> list:
    """Buildbot's default for GitHubCommentPush: no comment at the start, "Build done." at the end."""
    return [BuildStartEndStatusGenerator(start_formatter=MessageFormatterRenderable(None),
                                         end_formatter=MessageFormatterRenderable("Build done."))]

__all__ = ["GitHubCommentPush", "GitHubStatusPush"]
