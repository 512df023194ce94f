"""Webhook dialects: what GitHub, GitLab, Bitbucket and a plain form POST send, read as changes.

``c['www']['change_hook_dialects']`` names the dialects served at ``/change_hook/<dialect>``
(master/www/changehook.py) and their options, as in Buildbot 4:
``{'github': {'secret': ..., 'strict': True}, 'gitlab': {'secret': ...}, 'base': True}``.

Each dialect is a function ``(options, request) -> list of change dicts`` (the arguments of
``SchedulerManager.add_change``).  A request that does not prove the dialect's secret raises
``HookRefused`` (403); one that cannot be read raises ``HookError`` (400).  Nothing here
touches the network or the database: the HTTP side reads the request, the scheduler
manager stores what comes back.
"""

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from buildfarm.master.db.model import NAME_LENGTH, REPOSITORY_LENGTH, REVISION_LENGTH

# Buildbot's default patterns that make a push or a pull request skip its build.
DEFAULT_SKIPS = (r"\[ *skip *ci *\]", r"\[ *ci *skip *\]")
GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
GITHUB_EVENT_HEADER = "X-GitHub-Event"
GITLAB_TOKEN_HEADER = "X-Gitlab-Token"
GITLAB_EVENT_HEADER = "X-Gitlab-Event"
GITHUB_PULL_ACTIONS = ("opened", "reopened", "synchronize")
REF_PATTERN = re.compile(r"^refs/(heads|tags)/(.+)$")
# The longest text each change field holds (the database's columns).
FIELD_LENGTHS = {"author": NAME_LENGTH, "committer": NAME_LENGTH, "branch": NAME_LENGTH,
                 "revision": REVISION_LENGTH, "repository": REPOSITORY_LENGTH, "project": NAME_LENGTH,
                 "codebase": NAME_LENGTH, "category": NAME_LENGTH}
MAX_WHEN_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z
# Options each dialect reads; any other is a configuration error, never ignored in silence.
DIALECT_OPTIONS = {
    "github": {"secret", "strict", "codebase", "skips", "pullrequest_ref", "github_property_whitelist"},
    "gitlab": {"secret"},
    "bitbucket": set(),
    "base": set(),
    "poller": {"allowed"},
}
# Buildbot's ``poller`` dialect makes pollers poll now rather than reading a change
# (``POST /change_hook/poller?poller=<name>``; master/www/changehook.py runs the polls).
POLLER_DIALECT = "poller"


class HookError(Exception):
    """A request a dialect cannot read: answered with ``status`` and ``message`` as JSON."""

    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class HookRefused(HookError):
    """A request that does not prove the dialect's secret (a forged or unsigned one)."""

    status = 403


@dataclass(frozen=True)
class HookRequest:
    """What a dialect reads of an HTTP request: its headers (by lower-case name), its body,
    and its form arguments."""

    headers: dict[str, str]
    body: bytes
    args: dict[str, list[str]] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def arg(self, name: str) -> str | None:
        values = self.args.get(name)
        return values[0] if values else None


def validate_dialects(value: Any) -> tuple[dict[str, dict], list[str]]:
    """``c['www']['change_hook_dialects']`` as ``{dialect: options}``, and the problems in it."""
    if not isinstance(value, dict):
        return {}, ["c['www']['change_hook_dialects'] must be a dict of dialect name: options"]
    dialects: dict[str, dict] = {}
    errors: list[str] = []
    for name, options in value.items():
        if name not in DIALECT_OPTIONS:
            errors.append(f"change hook dialect {name!r} is not supported by buildfarm "
                          f"(supported: {', '.join(sorted(DIALECT_OPTIONS))})")
            continue
        if options is True or options is None:
            options = {}
        if not isinstance(options, dict):
            errors.append(f"change hook dialect {name!r}: its options must be a dict (or True)")
            continue
        unknown = sorted(set(options) - DIALECT_OPTIONS[name])
        if unknown:
            errors.append(f"change hook dialect {name!r}: option {unknown[0]!r} "
                          "is not supported by buildfarm")
            continue
        secret = options.get("secret")
        if secret is not None and not (isinstance(secret, str) and secret):
            errors.append(f"change hook dialect {name!r}: 'secret' must be a non-empty string")
            continue
        allowed = options.get("allowed")
        if allowed is not None and not (isinstance(allowed, list | tuple)
                                        and all(isinstance(a, str) for a in allowed)):
            errors.append(f"change hook dialect {name!r}: 'allowed' must be a list of poller names")
            continue
        if options.get("strict") and not secret:
            errors.append(f"change hook dialect {name!r}: 'strict' needs a 'secret'")
            continue
        dialects[name] = dict(options)
    return dialects, errors


def unauthenticated_dialects(dialects: dict[str, dict]) -> list[str]:
    """The configured dialects that accept changes from anyone who reaches the web port (not
    ``poller``: it takes no change, only makes a poller read the real repository now)."""
    return sorted(name for name, options in dialects.items()
                  if not options.get("secret") and name != POLLER_DIALECT)


def changes_from(dialect: str, options: dict, request: HookRequest) -> list[dict]:
    """The changes a request to ``/change_hook/<dialect>`` reports (``add_change`` arguments)."""
    try:
        changes = DIALECTS[dialect](options, request)
    except HookError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise HookError(f"{dialect} payload not understood: {type(e).__name__}: {e}") from None
    for change in changes:
        problem = change_problem(change)
        if problem is not None:
            raise HookError(problem)
    return changes


def change_problem(change: dict) -> str | None:
    """Why a change cannot be stored as it is (a field too long, a time out of range), or None."""
    for name, most in FIELD_LENGTHS.items():
        value = change.get(name)
        if value is not None and not isinstance(value, str):
            return f"{name} must be text"
        if value is not None and len(value) > most:
            return f"{name} is longer than {most} characters"
    when = change.get("when_timestamp")
    if when is not None and (isinstance(when, bool) or not isinstance(when, int | float)
                             or not 0 <= when <= MAX_WHEN_TIMESTAMP):
        return f"when_timestamp must be epoch seconds from 0 to {MAX_WHEN_TIMESTAMP}"
    return None


# -- GitHub ---------------------------------------------------------------------------------

def github(options: dict, request: HookRequest) -> list[dict]:
    """GitHub's ``push`` and ``pull_request`` events (``ping`` is answered with no change).

    With a ``secret``, the body must carry GitHub's HMAC-SHA256 of it in
    ``X-Hub-Signature-256``; without one, unsigned requests are accepted (as in Buildbot)."""
    _check_github_signature(options.get("secret"), request)
    payload = _json_payload(request)
    event = request.header(GITHUB_EVENT_HEADER)
    if event in ("ping", "workflow_run"):
        return []
    if event == "push":
        return _github_push(options, payload)
    if event == "pull_request":
        return _github_pull_request(options, payload)
    raise HookError(f"unknown GitHub event {event!r} (push, pull_request and ping are handled)")


def github_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _check_github_signature(secret: str | None, request: HookRequest) -> None:
    if not secret:
        return
    given = request.header(GITHUB_SIGNATURE_HEADER)
    if not given:
        raise HookRefused(f"missing {GITHUB_SIGNATURE_HEADER}: this hook takes signed requests only")
    expected = github_signature(secret, request.body).encode()
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected):
        raise HookRefused(f"{GITHUB_SIGNATURE_HEADER} does not match the body and the hook's secret")


def _github_push(options: dict, payload: dict) -> list[dict]:
    match = REF_PATTERN.match(payload["ref"])
    if not match or payload.get("deleted"):
        return []
    category = "tag" if match.group(1) == "tags" else None
    head = payload.get("head_commit") or {}
    if _skipped(options, head.get("message", "")):
        return []
    commits = [head] if payload.get("created") and head else payload["commits"]
    repository = payload["repository"]
    changes = []
    for commit in commits:
        changes.append({
            "author": _person(commit["author"]),
            "committer": _person(commit["committer"]),
            "files": _touched(commit),
            "comments": commit["message"],
            "revision": commit["id"],
            "when_timestamp": _epoch(commit["timestamp"]),
            "branch": match.group(2),
            "repository": repository["html_url"],
            "project": repository["full_name"],
            "category": category,
            "codebase": _codebase(options, payload),
            "properties": {"github_distinct": commit.get("distinct", True), "event": "push",
                           "revlink": commit.get("url", ""),
                           **_whitelisted(options, payload)},
        })
    return changes


def _github_pull_request(options: dict, payload: dict) -> list[dict]:
    if payload.get("action") not in GITHUB_PULL_ACTIONS:
        return []
    pull = payload["pull_request"]
    if _skipped(options, pull.get("title") or ""):
        return []
    number = payload["number"]
    commits = pull["commits"]
    revlink = pull["_links"]["html"]["href"]
    return [{
        "author": payload["sender"]["login"],
        "comments": f"GitHub Pull Request #{number} ({commits} commit{'s' if commits != 1 else ''})\n"
                    f"{pull['title']}\n{pull.get('body') or ''}",
        "files": [],  # GitHub's event does not list them (Buildbot asks GitHub's API; we do not)
        "revision": pull["head"]["sha"],
        "when_timestamp": _epoch(pull["created_at"]),
        "branch": f"refs/pull/{number}/{options.get('pullrequest_ref', 'merge')}",
        "repository": payload["repository"]["html_url"],
        "project": pull["base"]["repo"]["full_name"],
        "category": "pull",
        "codebase": _codebase(options, payload),
        "properties": {"pullrequesturl": revlink, "event": "pull_request", "basename": pull["base"]["ref"],
                       **_whitelisted(options, pull)},
    }]


def _skipped(options: dict, message: str) -> bool:
    return any(re.search(pattern, message) for pattern in options.get("skips", DEFAULT_SKIPS))


def _codebase(options: dict, payload: dict) -> str:
    codebase = options.get("codebase")
    if callable(codebase):
        return codebase(payload)
    return codebase or ""


def _whitelisted(options: dict, payload: dict) -> dict:
    """Buildbot's ``github_property_whitelist``: payload fields (fnmatch patterns) as
    ``github.<name>`` properties."""
    import fnmatch

    patterns = options.get("github_property_whitelist") or []
    return {f"github.{k}": v for k, v in payload.items()
            if any(fnmatch.fnmatch(k, p) for p in patterns)}


# -- GitLab ---------------------------------------------------------------------------------

def gitlab(options: dict, request: HookRequest) -> list[dict]:
    """GitLab's push, tag push and merge request events; with a ``secret``, the request's
    ``X-Gitlab-Token`` must be it."""
    secret = options.get("secret")
    if secret:
        given = request.header(GITLAB_TOKEN_HEADER) or ""
        if not hmac.compare_digest(given.encode("utf-8", "replace"), secret.encode("utf-8")):
            raise HookRefused(f"wrong or missing {GITLAB_TOKEN_HEADER}")
    payload = _json_payload(request)
    event = payload.get("object_kind", request.header(GITLAB_EVENT_HEADER))
    codebase = request.arg("codebase") or ""
    if event in ("push", "tag_push", "Push Hook"):
        return _gitlab_push(payload, event, codebase)
    if event == "merge_request":
        return _gitlab_merge_request(payload, codebase)
    return []


def _gitlab_push(payload: dict, event: str, codebase: str) -> list[dict]:
    match = REF_PATTERN.match(payload["ref"])
    if not match or payload.get("deleted"):
        return []
    return [{
        "author": _person(commit["author"]),
        "files": _touched(commit),
        "comments": commit["message"],
        "revision": commit["id"],
        "when_timestamp": _epoch(commit["timestamp"]),
        "branch": match.group(2),
        "repository": payload["repository"]["url"],
        "project": payload["repository"]["name"],
        "category": event,
        "codebase": codebase,
        "properties": {"event": event, "revlink": commit.get("url", "")},
    } for commit in payload["commits"] if commit.get("distinct", True)]


def _gitlab_merge_request(payload: dict, codebase: str) -> list[dict]:
    attrs = payload["object_attributes"]
    if attrs["state"] in ("closed", "merged", "approved"):
        return []
    action = attrs.get("action")
    if action not in ("open", "reopen") and not (action == "update" and "oldrev" in attrs):
        return []
    commit = attrs["last_commit"]
    return [{
        "author": _person(commit["author"]),
        "files": [],
        "comments": f"MR#{attrs['iid']}: {attrs['title']}\n\n{attrs.get('description') or ''}",
        "revision": commit["id"],
        "when_timestamp": _epoch(commit["timestamp"]),
        "branch": attrs["target_branch"],
        "repository": attrs["target"]["git_http_url"],
        "project": attrs["target"]["name"],
        "category": "merge_request",
        "codebase": codebase,
        "properties": {
            "event": "merge_request", "revlink": attrs.get("url", ""),
            "source_branch": attrs["source_branch"], "source_project_id": attrs["source_project_id"],
            "source_repository": attrs["source"]["git_http_url"],
            "source_git_ssh_url": attrs["source"]["git_ssh_url"],
            "target_branch": attrs["target_branch"], "target_project_id": attrs["target_project_id"],
            "target_repository": attrs["target"]["git_http_url"],
            "target_git_ssh_url": attrs["target"]["git_ssh_url"],
        },
    }]


# -- Bitbucket and base ---------------------------------------------------------------------

def bitbucket(options: dict, request: HookRequest) -> list[dict]:
    """Bitbucket's POST service: a ``payload`` form field holding the commits (as Buildbot's
    ``bitbucket`` dialect reads it)."""
    raw = request.arg("payload")
    if raw is None:
        raise HookError("no 'payload' form field")
    payload = _json_object(raw.encode("utf-8"))
    repository = payload["canon_url"] + payload["repository"]["absolute_url"]
    return [{
        "author": commit["raw_author"],
        "files": [f["file"] for f in commit.get("files", [])],
        "comments": commit["message"],
        "revision": commit["raw_node"],
        "when_timestamp": _epoch(commit["utctimestamp"]),
        "branch": commit["branch"],
        "repository": repository,
        "project": request.arg("project") or "",
        "codebase": request.arg("codebase") or "",
        "properties": {"revlink": f"{repository}commits/{commit['raw_node']}"},
    } for commit in payload["commits"]]


BASE_TEXT_FIELDS = ("revision", "committer", "comments", "branch", "category", "repository", "project",
                    "codebase")


def base(options: dict, request: HookRequest) -> list[dict]:
    """Buildbot's ``base`` dialect: one change from form fields (``files`` and ``properties``
    as JSON, ``author`` or ``who``, ``when_timestamp`` or ``when`` in epoch seconds)."""
    change: dict[str, Any] = {name: request.arg(name) for name in BASE_TEXT_FIELDS if request.arg(name)}
    change["author"] = request.arg("author") or request.arg("who") or "unknown"
    change.setdefault("comments", "")
    files = _json_object(request.arg("files").encode()) if request.arg("files") else []
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise HookError("files must be a JSON list of strings")
    properties = _json_object(request.arg("properties").encode()) if request.arg("properties") else {}
    if not isinstance(properties, dict):
        raise HookError("properties must be a JSON object")
    change["files"], change["properties"] = files, properties
    when = request.arg("when_timestamp") or request.arg("when")
    if when:
        try:
            change["when_timestamp"] = float(when)
        except (ValueError, OverflowError):
            raise HookError("when_timestamp must be epoch seconds") from None
    return [change]


# -- poller -----------------------------------------------------------------------------------

def pollers_to_poll(options: dict, request: HookRequest, pollers: list[str]) -> list[str]:
    """Which of the running ``pollers`` (their names) a ``poller`` hook request makes poll:
    those named by its ``poller`` arguments, or all when it names none; with the option
    ``allowed``, only those listed there.  A name that is not an allowed running poller is a
    ``HookError`` (nothing polls), as in Buildbot."""
    allowed = options.get("allowed")
    pollable = [name for name in pollers if allowed is None or name in allowed]
    asked = request.args.get("poller")
    if not asked:
        return pollable
    missing = sorted(set(asked) - set(pollable))
    if missing:
        raise HookError(f"Could not find pollers: {', '.join(missing)}")
    return [name for name in pollable if name in asked]


# -- shared ---------------------------------------------------------------------------------

def _json_payload(request: HookRequest) -> dict:
    """The event: a JSON body, or (GitHub's form content type) a ``payload`` form field."""
    content_type = (request.header("Content-Type") or "application/json").split(";")[0].strip()
    if content_type == "application/x-www-form-urlencoded":
        fields = request.args or parse_qs(request.body.decode("utf-8", "replace"))
        raw = (fields.get("payload") or [None])[0]
        if raw is None:
            raise HookError("no 'payload' form field")
        payload = _json_object(raw.encode("utf-8"))
    elif content_type == "application/json":
        payload = _json_object(request.body)
    else:
        raise HookError(f"unknown content type {content_type!r}")
    if not isinstance(payload, dict):
        raise HookError("the payload must be a JSON object")
    return payload


def _json_object(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HookError(f"the payload is not JSON: {e}") from None
    except RecursionError:
        raise HookError("the payload is nested too deeply") from None


def _person(who: dict) -> str:
    return f"{who['name']} <{who['email']}>"


def _touched(commit: dict) -> list[str]:
    return [path for kind in ("added", "modified", "removed") for path in commit.get(kind, [])]


def _epoch(timestamp: str) -> float:
    """ISO 8601 (``2015-05-05T19:40:15-04:00``, ``...Z``) as epoch seconds."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


DIALECTS: dict[str, Callable[[dict, HookRequest], list[dict]]] = {
    "github": github, "gitlab": gitlab, "bitbucket": bitbucket, "base": base,
}
