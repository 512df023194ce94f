"""The data behind the JSON API's pages, as plain dicts (the HTML pages may use them too).

Each function reads the master's live state (``botmaster``, ``scheduler``, ``slaveapi``) and
its database; none of them writes.  Field names are the API's (docs/api.md): change them
only by adding.
"""

from collections.abc import Callable

from buildfarm.common.faceids import BUILD_REQUEST, face_id
from buildfarm.common.redaction import redact_info
from buildfarm.common.results import result_name
from buildfarm.master.fleet import SLAVEAPI_READ_SCOPE, STATE_NAMES
from buildfarm.master.schedulers.forceparams import BaseParameter, ChoiceStringParameter
from buildfarm.master.schedulers.manager import NotForceable, UnknownBuilder
from buildfarm.master.status import SLAVE_STATES, SlaveStatus, one_slave_status, slave_statuses
from buildfarm.master.www.interfaces import IWebMaster

# How many of a slave's latest builds and SlaveAPI results its detail shows.
RECENT_ITEMS = 20
# The most running builds and waiting requests the overview lists.
OVERVIEW_ITEMS = 1000
# The reported info keys that hold a slave's environment variables.
ENVIRONMENT_KEYS = frozenset({"environ"})


def with_result_name(row: dict) -> dict:
    """Add the lower-case ``result`` name beside the integer ``results``."""
    return {**row, "result": result_name(row.get("results"))}


def duration(row: dict, now: float) -> float | None:
    """Seconds a build or step ran (so far, while it runs); None before it started."""
    if row.get("started_at") is None:
        return None
    return (row["complete_at"] if row.get("complete_at") is not None else now) - row["started_at"]


def environment_scope(slave: str) -> str:
    """The scope that shows a slave's reported environment."""
    return f"slaves:read-environment:{slave}"


def _deny(scope: str) -> bool:
    return False


def public_info(info: dict, show_environment: bool = False) -> dict:
    """A slave's reported info as it may be shown: secrets redacted by name and by shape (its
    environment may carry tokens, keys, URLs with passwords); the environment itself only when
    ``show_environment``."""
    return redact_info({key: value for key, value in info.items()
                        if show_environment or key not in ENVIRONMENT_KEYS})


# -- builders ----------------------------------------------------------------------------------

def builder_summary(builder) -> dict:
    """A configured builder as ``GET /api/v1/builders`` lists it."""
    return {
        "builderid": builder.builderid,
        "name": builder.name,
        "slavenames": builder.config.slavenames,
        "tags": builder.config.tags,
        "attached_slaves": sorted(builder.slavebuilders),
    }


def force_form(master: IWebMaster, buildername: str) -> dict | None:
    """What forcing ``buildername`` takes: its ForceScheduler's name, button, default reason
    and typed parameters; None when no ForceScheduler lists the builder."""
    try:
        scheduler = master.scheduler.force_scheduler_for(buildername)
    except (UnknownBuilder, NotForceable):
        return None
    reason = scheduler.reason
    return {
        "scheduler": scheduler.name,
        "label": scheduler.label or scheduler.name,
        "button": scheduler.buttonName or f"Force {buildername}",
        "reason": parameter_json(reason) if isinstance(reason, BaseParameter) else
        {"name": "reason", "type": "string", "label": "reason", "default": reason, "required": False},
        "parameters": [parameter_json(p) for p in scheduler.parameters if not p.hide],
        "free_properties": not scheduler.parameters,
        "codebases": [{"codebase": c.codebase, "label": c.label, "hide": bool(c.hide),
                       "fields": [{**parameter_json(f), "name": c.full_name(f)} for f in c.fields]}
                      for c in scheduler.codebase_parameters()],
    }


def parameter_json(parameter: BaseParameter) -> dict:
    """One force parameter: name, type, label, default, required, and its type's extras."""
    shown = {"name": parameter.name, "type": parameter.type_name, "label": parameter.label,
             "default": parameter.default, "required": parameter.required}
    if isinstance(parameter, ChoiceStringParameter):
        shown.update(choices=parameter.choices, multiple=parameter.multiple, strict=parameter.strict)
    for extra in ("regex", "maxsize"):
        value = getattr(parameter, extra, None)
        if value is not None:
            shown[extra] = getattr(value, "pattern", value)
    return shown


async def builder_detail(master: IWebMaster, builder) -> dict:
    """A builder with its force form, running builds, waiting requests and last build."""
    db, now = master.db, master.reactor.seconds()
    running = await db.builds.get_all(builderid=builder.builderid, complete=False, limit=OVERVIEW_ITEMS)
    last = (await db.builds.get_last_finished_by_builder()).get(builder.builderid)
    queue = (await db.buildrequests.get_queue_by_builder()).get(builder.name)
    return {
        **builder_summary(builder),
        "force": force_form(master, builder.name),
        "running_builds": [build_summary(b, now, master.config.buildbot_url) for b in running],
        "last_build": None if last is None else build_summary(last, now, master.config.buildbot_url),
        **queue_fields(queue, now),
    }


def queue_fields(queue: dict | None, now: float) -> dict:
    """``pending`` requests and ``oldest_pending_age`` (seconds, None when none wait)."""
    if not queue:
        return {"pending": 0, "oldest_pending_age": None}
    return {"pending": queue["pending"], "oldest_pending_age": now - queue["oldest_submitted_at"]}


def build_summary(build: dict, now: float, site_url: str | None = None) -> dict:
    """A build row with its result name, duration, API URL and its page's ``page_url``
    (absolute under ``site_url``, c['buildbotURL'], when that is set)."""
    return {**with_result_name(build), "duration": duration(build, now),
            "queue_task_id": queue_task_id(build), "url": f"/api/v1/builds/{build['buildid']}",
            "page_url": page_url(site_url, f"builds/{build['buildid']}")}


def page_url(site_url: str | None, path: str) -> str:
    """The link to the page at ``path`` (relative to the site's root, no leading '/'): under
    c['buildbotURL'] when set, for links read outside the site; else a path of this host."""
    return f"{site_url or '/'}{path}"


# -- builds ------------------------------------------------------------------------------------

async def build_detail(master: IWebMaster, build: dict) -> dict:
    """A build with its steps (result, duration) and each step's logs (lines, bytes, URLs)."""
    db, now = master.db, master.reactor.seconds()
    buildid = build["buildid"]
    steps = await db.steps.get_all(buildid)
    logs_of = {step["stepid"]: await db.logs.get_all(step["stepid"]) for step in steps}
    sizes = await db.logs.get_sizes([entry["logid"] for logs in logs_of.values() for entry in logs])
    shown = []
    for step in steps:
        logs = [log_json(entry, sizes.get(entry["logid"], 0), f"/api/v1/builds/{buildid}/steps/"
                         f"{step['number']}/logs/{entry['slug']}") for entry in logs_of[step["stepid"]]]
        shown.append({**with_result_name(step), "duration": duration(step, now), "logs": logs})
    return {**with_result_name(build), "duration": duration(build, now),
            "queue_task_id": queue_task_id(build),
            "page_url": page_url(master.config.buildbot_url, f"builds/{buildid}"), "steps": shown}


def queue_task_id(build: dict) -> str:
    """The Queue's taskId of the build's request: the build is one of its runs (master/queue/
    faces.py; ``GET /api/queue/v1/task/<taskId>/status``)."""
    return face_id(BUILD_REQUEST, build["buildrequestid"])


def log_json(entry: dict, size: int, url: str | None = None) -> dict:
    """A log's row with its size in bytes and the URLs that read it."""
    base = f"/api/v1/logs/{entry['logid']}"
    return {**entry, "size": size, "url": url or f"{base}/raw", "lines_url": base,
            "tail_url": f"{base}/tail", "raw_url": f"{base}/raw"}


# -- slaves ------------------------------------------------------------------------------------

async def slave_summaries(master: IWebMaster, with_info: bool = False) -> list[dict]:
    """Every configured slave and every slave the database remembers, by name, with its
    state (master/status.py).  Their ``info`` is None unless ``with_info``: see `add_infos`."""
    db = master.db
    known = {row["name"]: row for row in await db.slaves.get_all(with_info=with_info)}
    settings = await db.slaveapi.get_all_settings()
    statuses = await slave_statuses(master, rows=known, settings=settings)
    names = await db.slaveapi.master_names()
    return [slave_summary(master, status, known.get(name, {}), master_names=names)
            for name, status in statuses.items()]


async def add_infos(master: IWebMaster, summaries: list[dict],
                    may: Callable[[str], bool] = _deny) -> list[dict]:
    """Fill in the reported ``info`` of ``summaries`` (a page of them): one query; the
    environment of the slaves whose ``slaves:read-environment:<slave>`` the caller ``may``."""
    infos = await master.db.slaves.get_infos([s["name"] for s in summaries])
    for summary in summaries:
        live = master.botmaster.slaves.get(summary["name"])
        summary["info"] = public_info(infos.get(summary["name"]) or (live.info if live else {}),
                                      may(environment_scope(summary["name"])))
    return summaries


def slave_summary(master: IWebMaster, status: SlaveStatus, row: dict, show_environment: bool = False,
                  master_names: dict[int, str] | None = None) -> dict:
    """One slave as ``GET /api/v1/slaves`` lists it; ``master`` is the name of the master it is
    attached to, this one or another sharing the database (``master_names``: {masterid: name}),
    or None."""
    live = master.botmaster.slaves.get(status.name)
    return {
        "name": status.name,
        "master": None if status.masterid is None else (master_names or {}).get(status.masterid),
        "configured": status.name in master.config.slaves,
        "connected": status.connected,
        "attached": status.attached,
        "state": status.state,
        "enabled": status.enabled,
        "disabled_reason": status.disabled_reason,
        "running_builds": status.running_builds,
        "shutting_down": bool(live and live.shutting_down),
        "version": live.version if live else row.get("version"),
        "info": None if row and "info" in row and row["info"] is None else public_info(
            row.get("info") or (live.info if live else {}), show_environment),  # the whole report
        "builders": sorted(live.remote_builders) if live else [],
        "last_seen": status.last_seen,
        "missing": status.missing,
        "last_connected_at": row.get("last_connected_at"),
        "last_disconnected_at": row.get("last_disconnected_at"),
    }


async def slave_detail(master: IWebMaster, name: str, may: Callable[[str], bool] = _deny) -> dict | None:
    """One slave with its commands, connection, SlaveAPI settings and recent history;
    None for a slave neither configured nor remembered.  The caller ``may`` see the
    environment (``slaves:read-environment:<slave>``) and the SlaveAPI's action results
    (``slaveapi:read``) only with those scopes."""
    db, now = master.db, master.reactor.seconds()
    row = await db.slaves.get(name)
    if row is None and name not in master.config.slaves:
        return None
    settings = await db.slaveapi.get_settings(name)
    recent = [] if row is None else await db.builds.get_all(slaveid=row["slaveid"], limit=RECENT_ITEMS)
    status = await one_slave_status(master, name, row, settings)
    live = master.botmaster.slaves.get(name)
    results = (await db.slaveapi.get_results(slave=name))[-RECENT_ITEMS:]
    info = (row or {}).get("info") or (live.info if live else {})
    commands = (live.commands if live is not None else None) or info.get("worker_commands") or \
        info.get("slave_commands") or {}
    return {
        **slave_summary(master, status, row or {}, may(environment_scope(name)),
                        master_names=await db.slaveapi.master_names()),
        "commands": commands,
        "peer": live.peer if live is not None else None,
        "connected_masterid": (row or {}).get("connected_masterid"),
        "connections": await db.slaves.get_connections(name, RECENT_ITEMS),
        "slaveapi": {
            "enabled": settings["enabled"], "disabled_reason": settings["disabled_reason"],
            "disabled_by": settings["disabled_by"], "disabled_at": settings["disabled_at"],
            "environment": settings["environment"], "notes": settings["notes"],
            "results": [slaveapi_result_json(r) for r in reversed(results)] if may(SLAVEAPI_READ_SCOPE)
            else None,
        },
        "recent_builds": [build_summary(b, now, master.config.buildbot_url) for b in recent],
    }


def slaveapi_result_json(row: dict) -> dict:
    """A SlaveAPI action result with its state's name (``args`` may hold secrets: not shown)."""
    shown = {k: v for k, v in row.items() if k != "args"}
    return {**shown, "state_name": STATE_NAMES.get(row["state"], str(row["state"]))}


# -- overview ----------------------------------------------------------------------------------

async def overview(master: IWebMaster) -> dict:
    """The fleet at a glance: builders (last result, running builds, waiting requests), the
    request queue with ages, and slaves by state with their last-seen times."""
    db, now = master.db, master.reactor.seconds()
    last = await db.builds.get_last_finished_by_builder()
    running = await db.builds.get_all(complete=False, limit=OVERVIEW_ITEMS)
    queues = await db.buildrequests.get_queue_by_builder()
    site_url = master.config.buildbot_url
    builders = []
    for builder in master.botmaster.builders.values():
        last_build = last.get(builder.builderid)
        builders.append({
            **builder_summary(builder),
            "last_build": None if last_build is None else build_summary(last_build, now, site_url),
            "running_builds": [build_summary(b, now, site_url) for b in running
                               if b["builderid"] == builder.builderid],
            **queue_fields(queues.get(builder.name), now),
        })
    waiting = [r for r in await db.buildrequests.get_all(complete=False, limit=OVERVIEW_ITEMS)
               if not r["claimed"]]
    pending = [{**with_result_name(r), "age": now - r["submitted_at"]}
               for r in sorted(waiting, key=lambda r: r["submitted_at"])]
    slaves = [{key: value for key, value in summary.items() if key != "info"}
              for summary in await slave_summaries(master)]
    counts = {state: sum(1 for s in slaves if s["state"] == state) for state in SLAVE_STATES}
    return {
        "title": master.config.title,
        "now": now,
        "builders": builders,
        "pending_buildrequests": pending,
        "slaves": slaves,
        "slave_counts": {**counts, "attached": sum(1 for s in slaves if s["attached"])},
    }


async def build_owner(db, build: dict) -> str | None:
    """Who owns a build: the ``owner`` property of its request (who forced it), if any."""
    buildrequest = await db.buildrequests.get(build["buildrequestid"])
    owner = (buildrequest or {}).get("properties", {}).get("owner")
    owner = owner[0] if isinstance(owner, list | tuple) and owner else owner
    return owner if isinstance(owner, str) else None
