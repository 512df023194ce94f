"""What every part of the Queue's API shares (master/queue/api.py and the route mixins next to it):
the one Klein app and ``RouteTable`` of the ``queue`` service, its URL prefix, its error, and the
argument and paging helpers.

A part of the Queue that adds routes does it in a mixin class of its own module, decorating its
methods with ``routes.route`` from here; ``QueueAPI`` (queue/api.py) inherits the mixin, so each
route is still declared once and lands in the one ``queue`` reference.
"""

from collections.abc import Callable

from buildfarm.master.http.routes import APIEntry, RouteTable, api_prefix
from buildfarm.master.http.routing import bounded_klein
from buildfarm.master.queue import apireference as ref
from buildfarm.master.queue.model import SLUGID
from buildfarm.master.queue.store import StoredTask

PREFIX = api_prefix(ref.SERVICE_NAME)
MAX_LIST_LIMIT = 1000  # tasks per page of listTaskGroup and listDependentTasks
TASK_SCOPE_ARGS = "{schedulerId}/{taskGroupId}/{taskId}"

app = bounded_klein()
routes = RouteTable(app, "queue")


class QueueAPIError(Exception):
    """An error answered in Taskcluster's shape with ``status``."""

    def __init__(self, status: int, message: str, extra: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra or {}


def api_entry(name: str, title: str, description: str, category: str, *, query: tuple[str, ...] = (),
              input: str | None = None, output: str | None = None) -> APIEntry:  # noqa: A002
    """The ``APIEntry`` of one Queue method (its place in the ``queue`` reference)."""
    return APIEntry(ref.SERVICE_NAME, name, title, description, category, query=query, input=input,
                    output=output)


def task_id_arg(value: str, name: str = "taskId") -> str:
    if not SLUGID.match(value):
        raise QueueAPIError(400, f"{name} {value!r} is not a slugid")
    return value


def query_arg(request, name: str) -> str | None:
    values = (request.args or {}).get(name.encode())
    return values[-1].decode("utf-8", "replace") if values else None


def _slugid_token(token: str) -> str | None:
    return token if SLUGID.match(token) else None


def page_args(request, read_token: Callable[[str], str | None] = _slugid_token,
              max_limit: int = MAX_LIST_LIMIT) -> tuple[int, str | None]:
    """``(limit, after)`` of a paged call: ``limit`` (default and at most ``max_limit``) and the
    ``continuationToken`` as ``read_token`` reads it (a slugid by default; None: not one this
    API gave, a 400)."""
    text = query_arg(request, "limit")
    if text is None:
        limit = max_limit
    elif not text.isdigit() or int(text) < 1:
        raise QueueAPIError(400, f"limit must be a positive integer, not {text!r}")
    else:
        limit = min(int(text), max_limit)
    token = query_arg(request, "continuationToken")
    if token is None:
        return limit, None
    after = read_token(token)
    if after is None:
        raise QueueAPIError(400, f"continuationToken {token!r} is not one this API gave")
    return limit, after


def task_page(body: dict, found: list[StoredTask], limit: int) -> dict:
    """``found`` (up to ``limit + 1``) as a page: a token while more follow (the last taskId
    shown; the lists are ordered by taskId)."""
    shown = found[:limit]
    body["tasks"] = [{"status": t.status(), "task": t.body} for t in shown]
    if len(found) > limit:
        body["continuationToken"] = shown[-1].task_id
    return body


