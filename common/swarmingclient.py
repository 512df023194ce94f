"""The Swarming client: talk to a Swarming v1 server (buildfarm's master, or any server that
serves the contract of shared/SWARMING-ISOLATE-API.md).

``SwarmingServer`` speaks the v1 API under ``/_ah/api/swarming/v1/`` over treq: ``tasks/new``,
``task/<id>/result``, ``task/<id>/stdout`` (by byte offset), ``task/<id>/request``,
``task/<id>/cancel``, the lists with their cursors (``query``), ``bots/list``, ``bot/<id>/get``,
``bot/<id>/terminate`` and the discovery documents.  Requests carry ``Authorization: Bearer``
when a token is given, and nothing otherwise.  Every failure is a ``SwarmingServerError`` whose
one-line message says what failed, the HTTP status, the server's message (the ``error`` of a
Cloud Endpoints body, each of its problems) and the URL.  5xx and 408 answers are tried again
a few times; any other error is not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from treq.client import HTTPClient
from twisted.internet import defer, task
from twisted.internet.error import ConnectError, ConnectionRefusedError, DNSLookupError, TimeoutError
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed

API_PATH = "/_ah/api/swarming/v1"
DISCOVERY_PATH = "/_ah/api/discovery/v1/apis"
USER_AGENT = "buildfarm-swarming/1.0"
JSON_TYPE = "application/json; charset=UTF-8"
REQUEST_TIMEOUT_S = 60
RETRIES = 4  # 5xx, 408 and a connection cut short are tried again
RETRY_DELAY_S = 0.5
RETRYABLE_STATUS = frozenset({408, 500, 502, 503, 504})
QUERY_PAGE = 250  # the largest page asked for at once, as swarming.py's query
MAX_SERVER_MESSAGE = 300
FINAL_STATES = frozenset({"COMPLETED", "TIMED_OUT", "EXPIRED", "CANCELED", "KILLED", "BOT_DIED",
                          "NO_RESOURCE"})


class SwarmingServerError(Exception):
    """A call to the Swarming server failed; the message (one line) says which, with the HTTP
    status, the server's message and the URL."""

    def __init__(self, message: str, status: int | None = None, url: str | None = None):
        super().__init__(message)
        self.status = status
        self.url = url


def server_message(body: bytes) -> str:
    """The message of a Cloud Endpoints error body (``{"error": {"message", "errors": [...]}}``,
    each problem once), or the start of any other body; one line."""
    try:
        error = json.loads(body)["error"]
        messages = [str(error["message"])]
        for problem in error.get("errors") or []:
            text = str(problem.get("message", "")) if isinstance(problem, dict) else ""
            if text and text not in messages[0]:
                messages.append(text)
        text = "; ".join(messages)
    except (ValueError, KeyError, TypeError, AttributeError):
        text = body[:MAX_SERVER_MESSAGE].decode("utf-8", "replace")
    text = " ".join(text.split())
    if len(text) > MAX_SERVER_MESSAGE:
        text = text[:MAX_SERVER_MESSAGE] + "..."
    return text or "(empty body)"


def is_final(state: str | None) -> bool:
    """Whether a task in ``state`` is over (every state but PENDING and RUNNING)."""
    return state in FINAL_STATES


class SwarmingServer:
    """A client of the Swarming v1 server at ``url``; ``token``: a bearer token, or None to send
    no credentials (a server that grants its scopes to anonymous callers)."""

    def __init__(self, url: str, *, reactor, token: str | None = None,
                 pool: HTTPConnectionPool | None = None):
        self.url = url.rstrip("/")
        self.reactor = reactor
        self.headers = {"User-Agent": USER_AGENT}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._own_pool = pool is None
        if pool is None:
            pool = HTTPConnectionPool(reactor, persistent=True)
            pool.retryAutomatically = False
        self.pool = pool
        self._http = HTTPClient(Agent(reactor, pool=pool))

    async def close(self) -> None:
        """Close the connections of this client's own pool."""
        if self._own_pool:
            await self.pool.closeCachedConnections()

    # -- HTTP plumbing ---------------------------------------------------------------------

    async def call(self, what: str, method: str, path: str, body: dict | None = None,
                   query: Iterable[tuple[str, Any]] = ()) -> dict:
        """The JSON object the server answers to ``method path`` (``path`` under the server's
        root, ``query`` as ``(name, value)`` pairs; ``body`` sent as compact sorted JSON)."""
        url = self.url + path
        pairs = [(k, str(v)) for k, v in query]
        if pairs:
            url += ("&" if "?" in url else "?") + urlencode(pairs)
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
            headers["Content-Type"] = JSON_TYPE
        for attempt in range(RETRIES):
            try:
                response = await self._http.request(method, url, data=data, headers=headers,
                                                    timeout=REQUEST_TIMEOUT_S)
                raw = await response.content()
            except (ConnectionRefusedError, DNSLookupError, ConnectError) as e:
                raise SwarmingServerError(f"{what} failed: cannot connect to {self.url}: {e}",
                                          url=url) from None
            except (TimeoutError, defer.CancelledError):
                raise SwarmingServerError(f"{what} failed: no answer within {REQUEST_TIMEOUT_S} s ({url})",
                                          url=url) from None
            except ResponseFailed as e:
                if attempt + 1 < RETRIES:
                    await self._pause(attempt)
                    continue
                raise SwarmingServerError(f"{what} failed: the connection broke: {e.reasons[0].value} "
                                          f"({url})", url=url) from None
            if response.code == 200:
                return self._json_object(what, raw, url)
            if response.code in RETRYABLE_STATUS and attempt + 1 < RETRIES:
                await self._pause(attempt)
                continue
            raise SwarmingServerError(f"{what} failed: HTTP {response.code}: {server_message(raw)} ({url})",
                                      status=response.code, url=url)
        raise AssertionError("unreachable")

    async def _pause(self, attempt: int) -> None:
        await task.deferLater(self.reactor, RETRY_DELAY_S * 2 ** attempt, lambda: None)

    @staticmethod
    def _json_object(what: str, raw: bytes, url: str) -> dict:
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise SwarmingServerError(f"{what} failed: the answer is not a JSON object ({url})", url=url)
        if isinstance(answer.get("error"), dict):  # an Endpoints error sent with 200
            raise SwarmingServerError(f"{what} failed: {server_message(raw)} ({url})", url=url)
        return answer

    # -- tasks -------------------------------------------------------------------------------

    async def new_task(self, body: dict) -> dict:
        """``tasks/new``: ``{task_id, request, task_result?}``; the task id is checked."""
        answer = await self.call("tasks/new", "POST", f"{API_PATH}/tasks/new", body)
        if not isinstance(answer.get("task_id"), str) or not answer["task_id"]:
            raise SwarmingServerError(f"tasks/new failed: the answer has no task_id ({self.url})")
        return answer

    async def result(self, task_id: str, performance_stats: bool = False) -> dict:
        """``task/<id>/result``: the TaskResult (of the task, or of one try for a run id)."""
        query = [("include_performance_stats", "true")] if performance_stats else []
        answer = await self.call("result", "GET", f"{API_PATH}/task/{_segment(task_id)}/result", query=query)
        if not isinstance(answer.get("state"), str):
            raise SwarmingServerError(f"result failed: the answer for {task_id} has no state ({self.url})")
        return answer

    async def stdout(self, task_id: str, offset: int = 0, length: int | None = None) -> dict:
        """``task/<id>/stdout``: ``{output, state}``, the output (text) from byte ``offset``."""
        query: list[tuple[str, Any]] = [("offset", offset)] if offset else []
        if length is not None:
            query.append(("length", length))
        answer = await self.call("stdout", "GET", f"{API_PATH}/task/{_segment(task_id)}/stdout", query=query)
        if not isinstance(answer.get("output", ""), str):
            raise SwarmingServerError(f"stdout failed: the output of {task_id} is not text ({self.url})")
        return answer

    async def request(self, task_id: str) -> dict:
        """``task/<id>/request``: the TaskRequest (secret bytes redacted)."""
        return await self.call("request", "GET", f"{API_PATH}/task/{_segment(task_id)}/request")

    async def cancel(self, task_id: str, kill_running: bool) -> dict:
        """``task/<id>/cancel``: ``{ok, was_running}``."""
        return await self.call("cancel", "POST", f"{API_PATH}/task/{_segment(task_id)}/cancel",
                               {"kill_running": kill_running})

    # -- lists -----------------------------------------------------------------------------

    async def query(self, what: str, limit: int | None = None, query: Sequence[tuple[str, Any]] = ()) -> dict:
        """``GET <what>`` (a path under the v1 API, with its own ``?...`` if any), page after
        page while the answer has a cursor and items, up to ``limit`` items (None: all): the
        first answer with every page's ``items``, without ``cursor``."""
        path = f"{API_PATH}/{what.lstrip('/')}"
        name = what.split("?", 1)[0]
        pairs = list(query)
        first = await self.call(name, "GET", path, query=pairs + _page_limit(limit, 0))
        page = first
        items = first.setdefault("items", []) if "items" in first or "cursor" in first else None
        while (items is not None and page.get("cursor") and page.get("items")
               and (limit is None or len(items) < limit)):
            more = pairs + [("cursor", page["cursor"])] + _page_limit(limit, len(items))
            page = await self.call(name, "GET", path, query=more)
            items.extend(page.get("items") or [])
        first.pop("cursor", None)
        if limit is not None and items is not None:
            del items[limit:]
        return first

    # -- bots ------------------------------------------------------------------------------

    async def bots(self, dimensions: Sequence[tuple[str, str]] = (), is_dead: str = "FALSE",
                   is_busy: str = "NONE") -> list[dict]:
        """Every bot of ``bots/list`` with all of ``dimensions`` (``(key, value)``), by name."""
        query = [("is_dead", is_dead), ("is_busy", is_busy)]
        query += [("dimensions", f"{k}:{v}") for k, v in dimensions]
        answer = await self.query("bots/list", None, query)
        bots = answer.get("items") or []
        for bot in bots:
            if not isinstance(bot, dict) or not isinstance(bot.get("bot_id"), str):
                raise SwarmingServerError(f"bots/list failed: a bot without bot_id ({self.url})")
        return bots

    async def bot(self, bot_id: str) -> dict:
        """``bot/<id>/get``: one bot."""
        return await self.call("bot", "GET", f"{API_PATH}/bot/{_segment(bot_id)}/get")

    async def terminate(self, bot_id: str) -> dict:
        """``bot/<id>/terminate``: ``{task_id}`` (empty when the server records no task for it)."""
        return await self.call("terminate", "POST", f"{API_PATH}/bot/{_segment(bot_id)}/terminate", {})

    # -- the server --------------------------------------------------------------------------

    async def discovery(self) -> list[dict]:
        """The discovery document of each API the server describes (but discovery's own)."""
        listing = await self.call("discovery", "GET", DISCOVERY_PATH)
        documents = []
        for item in listing.get("items") or []:
            if not isinstance(item, dict) or item.get("id") == "discovery:v1":
                continue
            url = str(item.get("discoveryRestUrl", ""))
            path = "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url
            documents.append(await self.call("discovery", "GET", path))
        return documents


def _segment(value: str) -> str:
    """``value`` as one path segment."""
    return quote(value, safe="")


def _page_limit(limit: int | None, have: int) -> list[tuple[str, Any]]:
    return [] if limit is None else [("limit", min(QUERY_PAGE, limit - have))]


__all__ = ["FINAL_STATES", "SwarmingServer", "SwarmingServerError", "is_final", "server_message"]
