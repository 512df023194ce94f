"""The build as Buildbot's reporters see it: the dict of Buildbot 4's data API (``builds``
with ``builder``, ``buildrequest``, ``buildset``, ``properties``, ``steps`` and their
``logs``, ``prev_build``, ``url``), made from buildfarm's tables.

Buildfarm keeps a property's value, not where it came from: each property reads as
``[value, "Build"]``.  Times are epoch seconds (as Buildbot's JSON has them).  A buildset's
source stamps are made from the build's ``branch``/``revision``/``repository``/``project``/
``codebase`` properties (buildfarm stores no source-stamp rows).
"""

from typing import Any

from twisted.internet import defer

from buildfarm.common.results import RETRY
from buildfarm.master.reporters.interfaces import IReporterMaster

PROPERTY_SOURCE = "Build"
# Builds looked at, newest first, to find the previous one of a build (Buildbot's prev_build).
PREVIOUS_BUILD_LOOKBACK = 50


def buildbot_url(master: IReporterMaster) -> str:
    """``c['buildbotURL']``, or the web port on localhost, or "" without a web port."""
    if master.config.buildbot_url:
        return master.config.buildbot_url
    port = _port_of(master.config.www_port)
    return f"http://localhost:{port}/" if port else ""


def url_for_build(master: IReporterMaster, buildid: int) -> str:
    """The build's page (master/www/ui)."""
    return f"{buildbot_url(master)}builds/{buildid}"


def url_for_log(master: IReporterMaster, buildid: int, step_number: int, slug: str) -> str:
    return f"{url_for_build(master, buildid)}/steps/{step_number}/logs/{slug}"


async def build_details(master: IReporterMaster, buildid: int, want_properties: bool = True,
                        want_steps: bool = False, want_logs: bool = False,
                        want_logs_content: bool = False, want_previous: bool = False) -> dict | None:
    """The Buildbot-shaped dict of build ``buildid`` (None when there is no such build)."""
    db = master.db
    row = await db.builds.get(buildid)
    if row is None:
        return None
    request = await db.buildrequests.get(row["buildrequestid"]) or {}
    buildset = await db.buildsets.get(request["buildsetid"]) if request else None
    props = row["properties"] or (request.get("properties") or {})
    build = {
        "buildid": row["buildid"],
        "number": row["number"],
        "builderid": row["builderid"],
        "buildrequestid": row["buildrequestid"],
        "workerid": row["slaveid"],
        "masterid": row["masterid"],
        "started_at": row["started_at"],
        "complete_at": row["complete_at"],
        "complete": row["complete"],
        "state_string": row["state_string"],
        "results": row["results"],
        "properties": as_buildbot_properties(props) if want_properties else {},
        "builder": builder_dict(master, row["builderid"], row["buildername"]),
        "buildrequest": _buildrequest_dict(request),
        "buildset": _buildset_dict(buildset, props),
        "parentbuild": None,
        "parentbuilder": None,
        "url": url_for_build(master, buildid),
        "locks_duration_s": 0,
    }
    if buildset and buildset.get("parent_buildid"):
        parent = await db.builds.get(buildset["parent_buildid"])
        if parent is not None:
            build["parentbuild"] = {k: parent[k] for k in ("buildid", "number", "builderid", "results")}
            build["parentbuilder"] = builder_dict(master, parent["builderid"], parent["buildername"])
    if want_steps:
        build["steps"] = await _steps(master, buildid, want_logs, want_logs_content)
    if want_previous:
        build["prev_build"] = await previous_build(master, row)
    return build


def getDetailsForBuild(master: IReporterMaster, build: dict, want_properties: bool = False,  # noqa: N802
                       want_steps: bool = False, want_previous_build: bool = False,
                       want_logs: bool = False, add_logs=None,
                       want_logs_content: bool = False) -> defer.Deferred:
    """Buildbot's ``reporters.utils.getDetailsForBuild``, for reporters and generators written
    against it: fills ``build`` (a dict with its ``buildid``) in place with what
    ``build_details`` reads (``builder``, ``buildset``, ``url``, ... and, when asked,
    ``properties``, ``steps`` with their logs, ``prev_build``).  A Deferred, as Buildbot's
    (``yield`` it in inlineCallbacks or ``await`` it); an unknown build fails with KeyError."""
    async def fill() -> None:
        details = await build_details(master, build["buildid"], want_properties=want_properties,
                                      want_steps=want_steps, want_logs=want_logs or bool(add_logs),
                                      want_logs_content=want_logs_content,
                                      want_previous=want_previous_build)
        if details is None:
            raise KeyError(f"no build {build['buildid']}")
        if not want_properties:  # the caller's properties, if it has some, stay
            del details["properties"]
        build.update(details)
    return defer.ensureDeferred(fill())


async def previous_build(master: IReporterMaster, row: dict) -> dict | None:
    """The builder's newest finished build before ``row`` that was not retried (Buildbot's
    ``prev_build``): ``buildid``, ``number``, ``results``, ``state_string``."""
    older = await master.db.builds.get_all(builderid=row["builderid"], complete=True,
                                           limit=PREVIOUS_BUILD_LOOKBACK)
    for other in older:
        if other["number"] < row["number"] and other["results"] != RETRY:
            return {k: other[k] for k in ("buildid", "number", "results", "state_string", "complete_at")}
    return None


async def responsible_users(master: IReporterMaster, build: dict) -> list[str]:
    """Who is responsible for ``build``, as Buildbot's ``getResponsibleUsersForBuild`` says:
    the authors of the changes it was built for (its ``changeids`` property) and whoever asked
    for it (``owner``, ``owners``), sorted, each once."""
    props = build.get("properties") or {}

    def value(name):
        entry = props.get(name)
        return entry[0] if isinstance(entry, list | tuple) and entry else None

    users = set()
    for changeid in value("changeids") or ():
        change = await master.db.changes.get(changeid)
        if change is not None and change.get("author"):
            users.add(change["author"])
    owner = value("owner")
    if isinstance(owner, str) and owner:
        users.add(owner)
    for other in value("owners") or ():
        if isinstance(other, str) and other:
            users.add(other)
    return sorted(users)


def as_buildbot_properties(values: dict) -> dict[str, list]:
    """``{name: value}`` as Buildbot's ``{name: [value, source]}``."""
    return {name: [value, PROPERTY_SOURCE] for name, value in values.items()}


def builder_dict(master: IReporterMaster, builderid: int, name: str) -> dict[str, Any]:
    config = next((b for b in master.config.builders if b.name == name), None)
    return {
        "builderid": builderid,
        "name": name,
        "description": None,  # buildfarm's builders have none
        "description_format": None,
        "description_html": None,
        "tags": list(config.tags) if config is not None else [],
        "masterids": [master.masterid],
        "projectid": None,
    }


def _buildrequest_dict(request: dict) -> dict:
    keys = ("buildrequestid", "buildsetid", "builderid", "priority", "claimed", "claimed_at",
            "claimed_by_masterid", "complete", "submitted_at", "complete_at")
    values = {k: request.get(k) for k in keys}
    values.update(results=_or_unfinished(request.get("results")), waited_for=False, properties=None)
    return values


def _or_unfinished(results: int | None) -> int:
    """Buildbot's data API gives an unfinished request or buildset the results -1."""
    return -1 if results is None else results


def _buildset_dict(buildset: dict | None, props: dict) -> dict:
    buildset = buildset or {}
    return {
        "bsid": buildset.get("bsid"),
        "external_idstring": None,
        "reason": buildset.get("reason", props.get("reason", "")),
        "submitted_at": buildset.get("submitted_at"),
        "complete": buildset.get("complete", False),
        "complete_at": buildset.get("complete_at"),
        "results": _or_unfinished(buildset.get("results")),
        "parent_buildid": buildset.get("parent_buildid"),
        "parent_relationship": None,
        "rebuilt_buildid": None,
        "sourcestamps": [_sourcestamp(props)],
    }


def _sourcestamp(props: dict) -> dict:
    return {
        "ssid": None,
        "branch": props.get("branch"),
        "revision": props.get("got_revision") or props.get("revision"),
        "project": props.get("project", ""),
        "repository": props.get("repository", ""),
        "codebase": props.get("codebase", ""),
        "patch": None,
        "created_at": None,
    }


async def _steps(master: IReporterMaster, buildid: int, want_logs: bool, want_content: bool) -> list[dict]:
    steps = []
    for step in await master.db.steps.get_all(buildid):
        entry = dict(step, hidden=False, urls=[])
        if want_logs:
            entry["logs"] = []
            for log in await master.db.logs.get_all(step["stepid"]):
                item = dict(log, stepname=step["name"],
                            url=url_for_log(master, buildid, step["number"], log["slug"]))
                if want_content:
                    item["content"] = {"content": await master.db.logs.get_text(log["logid"])}
                entry["logs"].append(item)
        steps.append(entry)
    return steps


def _port_of(description: str | None) -> int | None:
    if not description:
        return None
    for part in str(description).split(":")[1:]:
        if part.isdigit():
            return int(part)
        if part.startswith("port=") and part[5:].isdigit():
            return int(part[5:])
    return None
