"""``GitLabStatusPush`` (Buildbot's ``reporters.gitlab``): POSTs
``/api/v4/projects/{id}/statuses/{sha}`` for each source stamp of the build, with ``state``
(``running`` once started, ``pending`` before; success, failed or canceled at the end: see
``STATES``), ``name`` (the context, default ``buildbot/<buildername>``), ``ref`` (the
``source_branch`` property, else the source stamp's branch), ``target_url`` and
``description`` (the report's body).  The project is the ``source_project_id`` property when
set, else the repository URL's path, URL-encoded ("group%2Fsub%2Fname", which GitLab's API
takes in place of the numeric id: no look-up request).  The token goes in a
``PRIVATE-TOKEN`` header.  See forge.py for answers and retries.
"""

from urllib.parse import quote

from buildfarm.common.results import CANCELLED, EXCEPTION, FAILURE, RETRY, SKIPPED, SUCCESS, WARNINGS
from buildfarm.master.reporters.forge import (
    ForgeStatusPush,
    log_skipped,
    parse_repository_url,
    sourcestamps_of,
)

HOSTED_BASE_URL = "https://gitlab.com"
STATES = {SUCCESS: "success", WARNINGS: "success", SKIPPED: "success", FAILURE: "failed",
          EXCEPTION: "failed", CANCELLED: "canceled", RETRY: "pending"}


def gitlab_state(build: dict) -> str:
    """The state GitLab accepts: pending, running (started), then ``STATES`` at the end."""
    if build.get("complete"):
        return STATES.get(build.get("results"), "failed")
    return "running" if build.get("started_at") else "pending"


def gitlab_project(stamp: dict, props) -> str | None:
    """The project's id for the API: ``source_project_id``, else the URL-encoded path."""
    if props.getProperty("source_project_id") is not None:
        return quote(str(props.getProperty("source_project_id")), safe="")
    parsed = parse_repository_url(stamp.get("repository"))
    return quote(parsed.full, safe="") if parsed else None


class GitLabStatusPush(ForgeStatusPush):
    """A commit status on GitLab per build start and end (see the module's docstring)."""

    hosted_base_url = HOSTED_BASE_URL

    def auth_headers(self, token: str) -> dict:
        return {"PRIVATE-TOKEN": token}

    def requests_for(self, report, build, props, context) -> list[tuple[str, dict]]:
        requests = []
        for stamp in sourcestamps_of(build):
            project, sha = gitlab_project(stamp, props), stamp.get("revision")
            if project is None or not sha:
                log_skipped(self.name, build, stamp, "no project or no revision", context=context)
                continue
            ref = props.getProperty("source_branch") or stamp.get("branch")
            body = {"state": gitlab_state(build), "ref": ref, "target_url": build["url"], "name": context}
            if report.get("body") is not None:
                body["description"] = str(report["body"])
            requests.append((f"/api/v4/projects/{project}/statuses/{sha}", body))
        return requests


__all__ = ["GitLabStatusPush"]
