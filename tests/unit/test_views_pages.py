"""The grid and console pages and their live events (master/www/ui/views.py, routes in app.py),
on a real in-memory master: changes down the side and builds across, the filters, bad
filters as 400 pages, hostile text as text, and the event stream telling a page that a build
started or ended and that a new change arrived."""

import pytest
import pytest_twisted
from test_views_db import build, buildset, change
from twisted.internet import defer

from buildfarm.common.results import FAILURE, SUCCESS
from buildfarm.master.mq import events
from buildfarm.master.www.ui import views
from fixtures.memoryhttp import MemoryRequest, render, render_request
from fixtures.memorymaster import MASTER_CFG, eventually, memory_master_fixture

NOW = 1_700_000_000.0
CFG = MASTER_CFG.replace("""c['builders'] = [""", """c['builders'] = [
    util.BuilderConfig(name='win', slavenames=['bs2'], tags=['desktop'],
                       factory=util.BuildFactory([steps.ShellCommand(command=['echo'])])),
    util.BuilderConfig(name='android', slavenames=['bs2'], tags=['mobile', 'desktop'],
                       factory=util.BuildFactory([steps.ShellCommand(command=['echo'])])),""")
HOSTILE = "<script>window.pwned=1</script>"
master = memory_master_fixture(CFG, now=NOW)


@pytest.fixture
def site(master):
    return master.www.make_site().resource


async def page(site, path: str, **args) -> str:
    answer = await render(site, "GET", path, args=args)
    assert answer.code == 200, answer.body[:500]
    return answer.body.decode()


async def two_changes(master) -> dict:
    """Change ``old`` built on linux (success) and win (failure); change ``new`` running on linux."""
    db = master.db
    old = await change(db, NOW - 600, revision="a" * 40)
    new = await change(db, NOW - 60, branch="release", revision="b" * 40)
    first = await buildset(db, [old], ["linux", "win"], NOW - 590)
    second = await buildset(db, [new], ["linux"], NOW - 50)
    return {"old": old, "new": new,
            "ok": await build(db, first["linux"], "linux", "bs1", NOW - 580, SUCCESS),
            "bad": await build(db, first["win"], "win", "bs2", NOW - 570, FAILURE),
            "running": await build(db, second["linux"], "linux", "bs1", NOW - 40)}


def row_of(html: str, changeid: int) -> str:
    return html.split(f'data-change="{changeid}"', 1)[1].split("</tr>", 1)[0]


@pytest_twisted.ensureDeferred
async def test_the_grid_shows_changes_newest_first_with_a_linked_cell_per_build(master, site):
    made = await two_changes(master)
    html = await page(site, "/grid")
    assert html.index(f'data-change="{made["new"]}"') < html.index(f'data-change="{made["old"]}"')
    assert [name in html for name in ("android", "linux", "win")] == [True] * 3
    old = row_of(html, made["old"])
    assert "aaaaaaaaaaaa" in old and "ann &lt;ann@example.org&gt;" in old and "fix at" in old
    assert f'href="/builds/{made["ok"]}"' in old and "result-success" in old and "\u2714" in old
    assert f'href="/builds/{made["bad"]}"' in old and "result-failure" in old and "\u2716" in old
    new = row_of(html, made["new"])
    assert f'data-build="{made["running"]}"' in new and 'data-state="running"' in new
    assert 'src="/static/views.js"' in html and 'data-live="true"' in html


@pytest_twisted.ensureDeferred
async def test_filters_keep_a_branch_the_builders_of_a_tag_or_named_and_a_number_of_changes(master, site):
    made = await two_changes(master)
    release = await page(site, "/grid", branch="release")
    assert f'data-change="{made["new"]}"' in release and f'data-change="{made["old"]}"' not in release
    desktop = await page(site, "/grid", tag="desktop")
    assert 'data-builder="win"' in desktop and 'data-builder="linux"' not in desktop
    named = await page(site, "/grid", builder="linux")
    assert 'data-builder="linux"' in named and 'data-builder="win"' not in named
    one = await page(site, "/grid", changes="1")
    assert one.count("data-change=") == 1 and 'id="older"' in one and "2 changes" in one
    older = await page(site, "/grid", changes="1", offset="1")
    assert f'data-change="{made["old"]}"' in older and 'data-live="false"' in older


@pytest_twisted.ensureDeferred
async def test_the_console_expands_comments_and_groups_builders_by_their_first_tag(master, site):
    made = await two_changes(master)
    html = await page(site, "/console")
    assert '<pre class="comment">fix at' in html and "more</pre>" in html
    groups = html.split('class="tag">')[1:]
    assert [g.split("<", 1)[0] for g in groups] == ["desktop", "mobile", views.UNTAGGED]
    assert f'data-build="{made["bad"]}"' in html


@pytest_twisted.ensureDeferred
async def test_rows_alone_are_served_for_the_live_refresh(master, site):
    made = await two_changes(master)
    rows = await page(site, "/grid", rows="1")
    assert rows.lstrip().startswith("<tr") and "<html" not in rows
    assert f'data-change="{made["new"]}"' in rows
    console_rows = await page(site, "/console", rows="1")
    assert '<pre class="comment">' in console_rows and "<html" not in console_rows


@pytest_twisted.ensureDeferred
async def test_the_refreshed_rows_carry_the_change_count_shown_below_the_table(master, site):
    await two_changes(master)
    assert '<span class="hint" id="changes-total">2 changes</span>' in await page(site, "/grid")
    await change(master.db, NOW, revision="c" * 40)
    assert '<tr hidden data-total-text="3 changes"></tr>' in await page(site, "/grid", rows="1")


@pytest_twisted.ensureDeferred
async def test_bad_filters_are_400_pages_naming_the_field(master, site):
    for args, field in (({"changes": "0"}, "changes"), ({"changes": "101"}, "changes"),
                        ({"changes": "ten"}, "changes"), ({"offset": "-1"}, "offset"),
                        ({"branch": "x" * 300}, "branch")):
        answer = await render(site, "GET", "/grid", args=args)
        assert answer.code == 400 and field in answer.body.decode(), (args, answer.body[:300])


@pytest_twisted.ensureDeferred
async def test_hostile_change_text_is_shown_as_text(master, site):
    await master.db.changes.add(author=HOSTILE, comments=HOSTILE, files=[], when_timestamp=NOW,
                                created_at=NOW, revision=HOSTILE, branch=HOSTILE)
    for path in ("/grid", "/console"):
        html = await page(site, path)
        assert HOSTILE not in html and "&lt;script&gt;" in html


@pytest_twisted.ensureDeferred
async def test_no_changes_is_said_plainly(master, site):
    assert "No changes." in await page(site, "/grid")


# -- live events ------------------------------------------------------------------------------

def parsed(written: list[bytes]) -> list[tuple[str, str]]:
    """``(event, data)`` of each event written (comments and ``retry`` left out)."""
    found = []
    for block in b"".join(written).decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines()
                      if ": " in line and not line.startswith(":"))
        if "event" in fields:
            found.append((fields["event"], fields.get("data", "")))
    return found


async def publish_build(master, buildid: int, finished: bool = False) -> None:
    """The bus's build-started (or build-finished) of ``buildid``, as master/process/build.py sends it."""
    build = await master.db.builds.get(buildid)
    message = (events.build_finished(master.mq, build, build["results"], NOW, "done") if finished
               else events.build_started(master.mq, build))
    await events.publish(master.mq, message)


async def publish_change(master, changeid: int) -> None:
    await events.publish(master.mq, events.change_added(master.mq, await master.db.changes.get(changeid)))


@pytest_twisted.ensureDeferred
async def test_the_stream_tells_of_a_build_starting_and_ending_with_its_change(master):
    made = await two_changes(master)
    feed = views.ViewFeed(master.db, master.mq, master.reactor)
    before = master.mq.subscriptions()
    written: list[bytes] = []
    stream = defer.ensureDeferred(views.ViewEventStream(feed, master.reactor).run(written.append))
    assert master.mq.subscriptions() == before + 3 and len(feed.listeners) == 1
    await publish_build(master, made["running"])
    await eventually(lambda: defer.succeed(any(e == "build" for e, _ in parsed(written))), "a build event")
    await master.db.builds.finish(made["running"], SUCCESS, NOW, "done")
    await publish_build(master, made["running"], finished=True)
    await eventually(lambda: defer.succeed(len(parsed(written)) >= 3), "the second build event")
    started, finished = [data for event, data in parsed(written) if event == "build"]
    assert f'"changeid": {made["new"]}' in started and '"state": "running"' in started
    assert '"state": "success"' in finished and '"css": "result-success"' in finished
    assert f'"url": "/builds/{made["running"]}"' in finished and '"buildername": "linux"' in finished
    stream.cancel()
    assert feed.listeners == [] and not feed.listening and master.mq.subscriptions() == before


async def two_streams(master, feed) -> tuple[list[list[bytes]], list[defer.Deferred]]:
    written: list[list[bytes]] = [[], []]
    streams = [defer.ensureDeferred(views.ViewEventStream(feed, master.reactor).run(w.append))
               for w in written]
    await eventually(lambda: defer.succeed(feed.newest_change is not None), "the first newest change")
    return written, streams


@pytest_twisted.ensureDeferred
async def test_a_new_change_is_told_at_once_from_the_bus_to_every_stream_without_polling(master):
    await two_changes(master)
    feed = views.ViewFeed(master.db, master.mq, master.reactor)
    written, streams = await two_streams(master, feed)
    newest = await master.db.changes.add(author="bob", comments="new", files=[], when_timestamp=NOW,
                                         created_at=NOW)
    await publish_change(master, newest)  # the clock does not move: no poll could have seen it
    for w in written:
        assert parsed(w).count(("change", f'{{"changeid": {newest}}}')) == 1
    await publish_change(master, newest)  # at least once: a copy is not told again
    assert [sum(e == "change" for e, _ in parsed(w)) for w in written] == [1, 1]
    for stream in streams:
        stream.cancel()
    assert feed.listeners == [] and feed._poll is None


class CountingChanges:
    """``db.changes`` counting its ``get_all`` reads (the real one answers)."""

    def __init__(self, real):
        self.real = real
        self.reads = 0

    async def get_all(self, **kwargs):
        self.reads += 1
        return await self.real.get_all(**kwargs)


@pytest_twisted.ensureDeferred
async def test_the_fallback_poll_reads_changes_only_while_another_master_is_active(master):
    await two_changes(master)
    counting = CountingChanges(master.db.changes)
    db = type("DB", (), {"changes": counting, "masters": master.db.masters})()
    feed = views.ViewFeed(db, master.mq, master.reactor)
    written, streams = await two_streams(master, feed)
    master.reactor.advance(views.FALLBACK_POLL_S)
    await eventually(lambda: defer.succeed(counting.reads == 1), "a poll that finds this master alone")
    other = await master.db.masters.find_or_create("other:/srv/master")
    await master.db.masters.mark_active(other, NOW)
    newest = await master.db.changes.add(author="bob", comments="via the other master", files=[],
                                         when_timestamp=NOW, created_at=NOW)
    master.reactor.advance(views.FALLBACK_POLL_S)
    for w in written:
        await eventually(lambda w=w: defer.succeed(("change", f'{{"changeid": {newest}}}') in parsed(w)),
                         "the other master's change")
    assert counting.reads == 2
    for stream in streams:
        stream.cancel()


@pytest_twisted.ensureDeferred
async def test_a_stream_sends_keepalives_and_ends_at_its_time_limit(master):
    feed = views.ViewFeed(master.db, master.mq, master.reactor)
    written: list[bytes] = []
    stream = defer.ensureDeferred(views.ViewEventStream(feed, master.reactor, max_s=40).run(written.append))
    for _ in range(3):
        master.reactor.advance(views.KEEPALIVE_S)
    await stream
    assert b": keepalive\n\n" in written and feed.listeners == []


def test_a_listener_too_far_behind_is_told_to_refresh():
    listener = views.ViewListener()
    for _ in range(views.MAX_QUEUED_EVENTS + 1):
        listener.push(b"event: build\ndata: {}\n\n")
    assert [e for e in listener.take() if b"refresh" in e] and len(listener.queued) == 0


@pytest_twisted.ensureDeferred
async def test_the_events_route_streams_to_an_event_source_and_answers_others_at_once(master, site):
    before = master.mq.subscriptions()
    once = await render(site, "GET", "/views/events")
    assert once.code == 200 and once.header("content-type").startswith("text/event-stream")
    assert [event for event, _ in parsed([once.body])] == ["hello"]
    request = MemoryRequest("GET", "/views/events")
    request.requestHeaders.setRawHeaders(b"accept", [b"text/event-stream"])
    streaming = defer.ensureDeferred(render_request(site, request))
    await eventually(lambda: defer.succeed(b"event: hello" in b"".join(request.body_written)), "the hello")
    assert not streaming.called  # it stays open for the events to come
    request.connectionLost(Exception("the browser left"))
    await eventually(lambda: defer.succeed(master.mq.subscriptions() == before), "the stream to close")
    with pytest.raises(Exception, match="the browser left"):  # the request ended unfinished
        await streaming
