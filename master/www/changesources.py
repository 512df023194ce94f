"""The change sources as the JSON API shows them, and "poll now" (docs/api.md, "Change sources").

``GET /api/v1/changesources`` lists every running source of ``c['change_source']`` with its
name and kind and, for a poller, when it last polled and why that failed; ``POST
/api/v1/changesources/<name>/poll`` makes a poller poll now instead of waiting up to its
``pollInterval``.  The routes are in www/api.py; what they answer is made here.
"""

from urllib.parse import quote

from twisted.internet import defer

from buildfarm.master.changes.interfaces import IPollingChangeSource
from buildfarm.master.changes.manager import source_name
from buildfarm.master.www.interfaces import IWebMaster

# How long ``POST .../poll`` waits for the poll before it answers 202 (the poll goes on).
POLL_WAIT_S = 30.0
POLL_PATH = "/api/v1/changesources/{}/poll"


class NotAPoller(Exception):
    """The change source named does not poll (a PBChangeSource...)."""


def poll_path(name: str) -> str:
    """The path to POST to for ``name`` (each character outside the unreserved ones escaped,
    so a repository URL is one path segment)."""
    return POLL_PATH.format(quote(name, safe=""))


def source_json(source) -> dict:
    """``{"name", "kind", "poller"}`` and, for a poller, its ``poll_status()`` and
    ``poll_path``."""
    name = source_name(source)
    answer = {"name": name, "kind": type(source).__name__, "poller": IPollingChangeSource.providedBy(source)}
    if answer["poller"]:
        answer.update(source.poll_status(), poll_path=poll_path(name))
    return answer


def all_sources(master: IWebMaster) -> list[dict]:
    """Every running change source, in configuration order."""
    return [source_json(source) for source in master.changes.sources]


def poller_named(master: IWebMaster, name: str):
    """The running poller ``name``; None when no source has that name; ``NotAPoller`` when
    the source does not poll."""
    source = master.changes.named(name)
    if source is not None and not IPollingChangeSource.providedBy(source):
        raise NotAPoller(f"change source {name!r} is a {type(source).__name__}: it does not poll")
    return source


async def poll_within(source, clock, wait_s: float = POLL_WAIT_S) -> bool:
    """Make ``source`` poll now; whether that poll finished within ``wait_s`` seconds of
    ``clock`` (if not, it goes on and the caller answers without waiting more)."""
    answered: defer.Deferred = defer.Deferred()

    def settle(finished: bool) -> None:
        if not answered.called:
            answered.callback(finished)

    timer = clock.callLater(wait_s, settle, False)
    polled = source.poll_now()
    polled.addCallback(lambda _: settle(True))
    polled.addErrback(lambda failure: answered.called or answered.errback(failure))
    try:
        return await answered
    finally:
        if timer.active():
            timer.cancel()
