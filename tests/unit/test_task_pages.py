"""The task pages (master/www/ui/taskpages.py and their routes in app.py) rendered in memory on
a real in-memory master (its database, auth service and task engine): the task list with its
filters and cursors, the task page (request, tries, output, dedup links, Cancel / Kill), the
live output stream, the fleet by dimension, the slave page's tasks, escaping of hostile text,
and who may look."""

import base64
import json
from urllib.parse import unquote

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from buildfarm.master.tasks import ids, records
from buildfarm.master.tasks.model import request_from_json
from buildfarm.master.www.ui import taskpages
from buildfarm.master.www.ui.taskpages import TaskOutputStream
from fixtures.docexamples import example
from fixtures.memoryhttp import MemoryRequest, render, render_request
from fixtures.memorymaster import (
    MASTER_CFG,
    attach_slave,
    eventually,
    memory_master_fixture,
    start_memory_master,
    with_fast_password_checks,
)

NOW = 1_700_000_000.0
CFG = MASTER_CFG + """
c['users'] += [util.User('ci', password='c1', scopes=['tasks:read', 'tasks:cancel:ci', 'bots:read',
                                                     'slaves:read']),
               util.User('reader', password='r3ad', scopes=['tasks:read', 'bots:read', 'slaves:read'])]
"""
CI = {"Authorization": "Basic " + base64.b64encode(b"ci:c1").decode()}
READER = {"Authorization": "Basic " + base64.b64encode(b"reader:r3ad").decode()}
HOSTILE = "<script>window.pwned=1</script>"
master = memory_master_fixture(CFG, now=NOW)


@pytest.fixture
def site(master):
    with_fast_password_checks(master)
    return master.www.make_site().resource


_ids = iter(range(1, 1 << 16))


def body(**changes) -> dict:
    properties = {"command": ["echo", "hi"], "dimensions": [{"key": "pool", "value": "ci"},
                                                            {"key": "os", "value": "Linux"}],
                  "execution_timeout_secs": 600, "io_timeout_secs": 300, "grace_period_secs": 30}
    properties.update(changes.pop("properties", {}))
    answer = {"name": "hello", "priority": 100, "tags": ["purpose:test"],
              "task_slices": [{"expiration_secs": 3600, "properties": properties}]}
    answer.update(changes)
    return answer


async def add_task(master, at: float = NOW, result: dict | None = None, **changes) -> str:
    """A task stored through db.tasks, created at ``at``: its summary id."""
    request_id = ids.new_request_id(task_clock(at), lambda bits: next(_ids))
    new = records.new_task(request_from_json(body(**changes)), request_id, at, result)
    stored, _ = await master.db.tasks.create(new)
    return ids.summary_id(stored)


def task_clock(at: float) -> task.Clock:
    clock = task.Clock()
    clock.advance(at)
    return clock


def rid(task_id: str) -> int:
    return ids.parse_task_id(task_id)[0]


async def run(master, task_id: str, output: bytes = b"hi\n", exit_code: int | None = 0, slave: str = "bs1",
              state: str = "COMPLETED", at: float = NOW, retry: bool = False) -> int:
    """The task runs on ``slave``, prints ``output`` and (with ``state``) ends (``retry``: the
    task goes back to PENDING for another try, as the engine retries a lost idempotent one); its
    try number."""
    try_number = await master.db.tasks.start_run(rid(task_id), slave, at + 1)
    if output:
        await master.db.tasks.append_output(rid(task_id), try_number, 0, output)
    if state != "RUNNING":
        await master.db.tasks.finish_run(rid(task_id), try_number, state, at + 3.5, exit_code=exit_code,
                                         duration=2.5, retry=retry)
    return try_number


async def get(site, path: str, args: dict | None = None, headers=CI):
    """GET ``path``; an argument given as a list is sent once per value."""
    request = MemoryRequest("GET", path)
    request.args = {k.encode(): [str(x).encode() for x in (v if isinstance(v, list) else [v])]
                    for k, v in (args or {}).items()}
    for name, value in headers.items():
        request.requestHeaders.setRawHeaders(name.encode(), [value.encode()])
    return await render_request(site, request)


def row_ids(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('data-task-id="')[1:]]


# -- the list ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_list_is_newest_first_with_states_coloured_as_build_results(master, site):
    ok = await add_task(master, NOW, name="green")
    failed = await add_task(master, NOW + 10, name="red")
    pending = await add_task(master, NOW + 20, name="waiting", user="alice")
    await run(master, ok)
    await run(master, failed, exit_code=3, slave="bs2")

    response = await get(site, "/tasks")
    html = response.body.decode()
    assert response.code == 200
    assert row_ids(html) == [pending, failed, ok]
    assert f'<a href="/tasks/{ok}"><code>{ok}</code></a>' in html
    assert '<span class="result result-success">COMPLETED</span>' in html
    assert '<span class="result result-failure">COMPLETED</span> <span class="hint">exit 3</span>' in html
    assert '<span class="result result-running">PENDING</span>' in html
    assert '<a href="/slaves/bs2">bs2</a>' in html and "alice" in html
    assert '<a href="/tasks" id="tasks-link">Tasks</a>' in html and 'id="bots-link"' in html


@pytest_twisted.ensureDeferred
async def test_the_list_filters_by_state_tags_name_user_slave_and_time(master, site):
    a = await add_task(master, NOW, name="unit shard 1", tags=["purpose:ci", "shard:1"], user="alice")
    b = await add_task(master, NOW + 3600, name="unit shard 2", tags=["purpose:ci", "shard:2"], user="bob")
    c = await add_task(master, NOW + 7200, name="lint", tags=["purpose:other"], user="alice")
    await run(master, a, slave="bs1")
    await run(master, b, slave="bs2", exit_code=1)

    async def listed(args) -> list[str]:
        response = await get(site, "/tasks", args)
        assert response.code == 200, response.body
        return row_ids(response.body.decode())

    assert await listed({"state": "PENDING"}) == [c]
    assert await listed({"state": "COMPLETED_FAILURE"}) == [b]
    assert await listed({"tag": "purpose:ci"}) == [b, a]
    assert await listed({"tag": ["purpose:ci", "shard:1"]}) == [a]  # several tags: all of them
    assert await listed({"name": "SHARD"}) == [b, a]
    assert await listed({"user": "alice"}) == [c, a]
    assert await listed({"slave": "bs2"}) == [b]
    assert await listed({"start": "2023-11-14 23:13", "end": str(NOW + 7200)}) == [b]
    assert await listed({"user": "nobody"}) == []


@pytest_twisted.ensureDeferred
async def test_the_list_pages_with_cursors_also_when_filtering_by_name(master, site):
    made = [await add_task(master, NOW + i, name=f"task {i}" if i % 2 else f"other {i}") for i in range(7)]
    seen = []
    lister = taskpages.TaskList(master.db.tasks)
    flt = taskpages.parse_filter(lambda name: [])
    page = await lister.page(flt, size=3)
    seen += [ids.summary_id(r["request_id"]) for r in page.tasks]
    while page.cursor:
        page = await lister.page(flt, page.cursor, size=3)
        seen += [ids.summary_id(r["request_id"]) for r in page.tasks]
    assert seen == list(reversed(made))

    named = taskpages.parse_filter(lambda name: ["task"] if name == "name" else [])
    first = await lister.page(named, size=2)
    second = await lister.page(named, first.cursor, size=2)
    assert [r["name"] for r in first.tasks + second.tasks] == ["task 5", "task 3", "task 1"]
    assert second.cursor is None

    # Through the page: the next link carries the filters and the cursor.
    response = await get(site, "/tasks", {"name": "task"})
    assert row_ids(response.body.decode()) == [made[5], made[3], made[1]]
    assert 'id="next-page"' not in response.body.decode()


@pytest_twisted.ensureDeferred
async def test_a_filter_read_here_stops_at_max_scanned_and_the_next_page_goes_on(master, site, monkeypatch):
    monkeypatch.setattr(taskpages, "SCAN_BATCH", 2)
    monkeypatch.setattr(taskpages, "MAX_SCANNED", 4)
    oldest = await add_task(master, NOW, name="needle")
    for i in range(6):
        await add_task(master, NOW + 1 + i, name=f"hay {i}")
    response = await get(site, "/tasks", {"name": "needle"})
    html = response.body.decode()
    assert row_ids(html) == [] and 'id="scan-limited">4 tasks looked at' in html
    next_url = html.split('id="next-page"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    path, _, query = next_url.partition("?")
    args = dict(pair.split("=", 1) for pair in query.split("&"))
    assert args["name"] == "needle"
    response = await get(site, path, {k: unquote(v) for k, v in args.items()})
    assert row_ids(response.body.decode()) == [oldest]
    assert 'id="next-page"' not in response.body.decode()


@pytest_twisted.ensureDeferred
async def test_bad_filters_and_forged_cursors_are_400_pages_naming_them(master, site):
    for args, words in (({"state": "BOGUS"}, b"state must be one of"),
                        ({"tag": "nocolon"}, b"key:value"),
                        ({"start": "yesterday"}, b"start must be a UTC time"),
                        ({"cursor": "forged.abc"}, b"cursor is not one this master gave")):
        response = await get(site, "/tasks", args)
        assert response.code == 400 and words in response.body, (args, response.body)
        assert response.header("content-type").startswith("text/html")


# -- one task ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_task_page_shows_the_request_tries_output_and_outputs_with_browse_links(master, site):
    task_id = await add_task(master, name="isolated", tags=["purpose:ci"], properties={
        "command": [], "env": [{"key": "MODE", "value": "fast"}],
        "secret_bytes": base64.b64encode(b"hush").decode(),
        "inputs_ref": {"isolated": "a" * 40, "isolatedserver": "https://cas", "namespace": "default-gzip"}})
    try_number = await master.db.tasks.start_run(rid(task_id), "bs1", NOW + 1)
    await master.db.tasks.append_output(rid(task_id), try_number, 0, b"line one\nline two\n")
    outputs = {"isolated": "b" * 40, "isolatedserver": "https://cas", "namespace": "default-gzip"}
    await master.db.tasks.finish_run(rid(task_id), try_number, "COMPLETED", NOW + 4, exit_code=0,
                                     duration=3.0, outputs_ref=outputs)

    response = await get(site, f"/tasks/{task_id}")
    html = response.body.decode()
    assert response.code == 200
    assert '<pre class="logtext" id="task-output">line one\nline two\n</pre>' in html
    assert '<span id="task-state" class="result result-success">COMPLETED</span>' in html
    assert f'href="/browse?namespace=default-gzip&amp;digest={"a" * 40}" class="inputs"' in html
    assert f'<p id="outputs"><a href="/browse?namespace=default-gzip&amp;digest={"b" * 40}">' in html
    assert "<code>MODE=fast</code>" in html
    assert '<td class="secret">set</td>' in html and "hush" not in html and "aHVzaA" not in html
    assert "<code>os:Linux</code>, <code>pool:ci</code>" in html
    run_id = ids.run_id(rid(task_id), 1)
    assert f'<a href="/tasks/{run_id}"><code>{run_id}</code></a>' in html
    assert 'data-live="false"' in html and 'id="cancel-form"' not in html


@pytest_twisted.ensureDeferred
async def test_a_run_id_shows_that_try_and_unknown_or_malformed_ids_are_404_or_400(master, site):
    task_id = await add_task(master, properties={"idempotent": True})
    await run(master, task_id, output=b"first try\n", state="BOT_DIED", exit_code=None, retry=True)
    await run(master, task_id, output=b"second try\n", at=NOW + 6)

    latest = (await get(site, f"/tasks/{task_id}")).body.decode()
    assert "second try" in latest and "first try" not in latest
    first = await get(site, f"/tasks/{ids.run_id(rid(task_id), 1)}")
    html = first.body.decode()
    assert first.code == 200 and "first try" in html and "second try" not in html
    assert '<span id="task-state" class="result result-retry">BOT_DIED</span>' in html
    assert (await get(site, f"/tasks/{ids.run_id(rid(task_id), 3)}")).code == 404
    assert (await get(site, f"/tasks/{task_id[:-2]}00")).code in (404, 400)
    bad = await get(site, "/tasks/NOT-AN-ID")
    assert bad.code == 400 and b"lower-case hex" in bad.body


@pytest_twisted.ensureDeferred
async def test_hostile_names_tags_env_and_output_are_shown_as_text(master, site):
    task_id = await add_task(master, name=HOSTILE, tags=[f"x:{HOSTILE}"], user=HOSTILE,
                             properties={"env": [{"key": "X", "value": HOSTILE}]})
    await run(master, task_id, output=f"{HOSTILE}\n\x1b[31m&amp;\n".encode(), slave="bs1")
    for path in (f"/tasks/{task_id}", "/tasks"):
        html = (await get(site, path)).body.decode()
        assert HOSTILE not in html
        assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert "&amp;amp;" in (await get(site, f"/tasks/{task_id}")).body.decode()


@pytest_twisted.ensureDeferred
async def test_dedup_and_twin_links_go_both_ways(master, site):
    original = await add_task(master, NOW, properties={"idempotent": True})
    await run(master, original)
    reused = await add_task(master, NOW + 10, properties={"idempotent": True},
                            result={"state": "COMPLETED", "deduped_from": original, "exit_code": 0,
                                    "completed_at": NOW + 10})
    twin = {"idempotent": True, "command": ["true"]}
    running = await add_task(master, NOW + 20, name="twin", properties=twin)
    await run(master, running, state="RUNNING", output=b"")
    attached = await add_task(master, NOW + 21, name="twin", properties=twin)
    stored = await master.db.tasks.get_request(rid(attached))
    assert await master.db.tasks.attach_twin(rid(attached), stored["slices"][0]["properties_hash"], NOW + 21)

    html = (await get(site, f"/tasks/{original}")).body.decode()
    assert f'Answered from this task: <a href="/tasks/{reused}">' in html
    html = (await get(site, f"/tasks/{reused}")).body.decode()
    assert f'id="deduped-from">Answered from task <a href="/tasks/{original}">' in html
    html = (await get(site, f"/tasks/{running}")).body.decode()
    assert f'Attached to this task, waiting for it: <a href="/tasks/{attached}">' in html
    html = (await get(site, f"/tasks/{attached}")).body.decode()
    assert f'id="twin-of">Attached to its twin <a href="/tasks/{running}">' in html
    listing = (await get(site, "/tasks")).body.decode()
    assert f'href="/tasks/{original}" title="answered from task {original}">deduped</a>' in listing
    assert f'href="/tasks/{running}" title="attached to its twin {running}">twin</a>' in listing


@pytest_twisted.ensureDeferred
async def test_the_output_route_answers_plain_text_by_offset_and_length(master, site):
    task_id = await add_task(master)
    await run(master, task_id, output=b"0123456789<b>")
    response = await get(site, f"/tasks/{task_id}/output", {"offset": "2", "length": "5"})
    assert (response.code, response.body) == (200, b"23456")
    assert response.header("content-type") == "text/plain; charset=utf-8"
    assert (await get(site, f"/tasks/{task_id}/output")).body == b"0123456789<b>"
    assert (await get(site, f"/tasks/{task_id}/output", {"offset": "-1"})).code == 400
    unknown_try = ids.run_id(rid(task_id), 2)
    for path in (f"/tasks/{unknown_try}/output", f"/tasks/{unknown_try}/events"):
        assert (await get(site, path)).code == 404, path


# -- cancel and kill -------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_cancel_ends_a_pending_task_for_a_caller_holding_the_pools_cancel_scope(master, site):
    task_id = await add_task(master)
    html = (await get(site, f"/tasks/{task_id}")).body.decode()
    assert f'action="/tasks/{task_id}/cancel"' in html and ">Cancel</button>" in html
    assert 'name="kill"' not in html
    reader_view = (await get(site, f"/tasks/{task_id}", headers=READER)).body.decode()
    assert 'disabled title="needs the scope tasks:cancel:ci"' in reader_view

    refused = await render(site, "POST", f"/tasks/{task_id}/cancel", headers=READER)
    assert refused.code == 403 and b"tasks:cancel:ci" in refused.body
    assert (await master.db.tasks.get_result(rid(task_id)))["state"] == "PENDING"

    done = await render(site, "POST", f"/tasks/{task_id}/cancel", headers=CI)
    assert done.code == 303 and done.header("location") == f"/tasks/{task_id}?canceled=canceled"
    assert (await master.db.tasks.get_result(rid(task_id)))["state"] == "CANCELED"
    again = await render(site, "POST", f"/tasks/{task_id}/cancel", headers=CI)
    assert again.code == 409 and b"already ended" in again.body


@pytest_twisted.ensureDeferred
async def test_a_running_task_offers_kill_and_a_session_post_needs_its_csrf_token(master, site):
    task_id = await add_task(master)
    await run(master, task_id, state="RUNNING")
    html = (await get(site, f"/tasks/{task_id}")).body.decode()
    assert '<input type="hidden" name="kill" value="1">' in html and ">Kill</button>" in html
    assert 'data-live="true"' in html

    session = master.auth.sessions.create("ci")
    request = MemoryRequest("POST", f"/tasks/{task_id}/cancel")
    request.received_cookies[b"buildfarm_session"] = session.sid.encode()
    request.args = {b"kill": [b"1"]}
    response = await render_request(site, request)
    assert response.code == 403, response.body  # no CSRF token in the form
    assert (await master.db.tasks.get_result(rid(task_id)))["state"] == "RUNNING"


# -- the live output -------------------------------------------------------------------------


def sse(written: list[bytes]) -> list[tuple[str, dict, str | None]]:
    parsed = []
    for block in b"".join(written).decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "event" in fields:
            parsed.append((fields["event"], json.loads(fields["data"]), fields.get("id")))
    return parsed


async def until_done(clock: task.Clock, finished: defer.Deferred, deadline_s: float = 10.0) -> None:
    """Advance the stream's clock (its polls) until it ended; the database answers on threads."""
    end = reactor.seconds() + deadline_s
    while not finished.called:
        assert reactor.seconds() < end, "the stream did not end"
        clock.advance(taskpages.POLL_S)
        await task.deferLater(reactor, 0.01, lambda: None)
    await finished


@pytest_twisted.ensureDeferred
async def test_the_stream_sends_new_output_as_it_is_stored_then_done(master):
    task_id = await add_task(master)
    try_number = await run(master, task_id, output=b"one\n", state="RUNNING")
    clock = task.Clock()
    written: list[bytes] = []
    stream = TaskOutputStream(master.db.tasks, clock, rid(task_id), try_number, True, 0)
    finished = defer.ensureDeferred(stream.run(written.append))

    await eventually(lambda: defer.succeed(any(e[0] == "output" for e in sse(written))), "the first output")
    await master.db.tasks.append_output(rid(task_id), try_number, 4, "twó <b>\n".encode())
    await master.db.tasks.finish_run(rid(task_id), try_number, "COMPLETED", NOW + 9, exit_code=0,
                                     duration=8.0)
    await until_done(clock, finished)

    events = sse(written)
    outputs = [(data["offset"], data["text"], event_id) for kind, data, event_id in events
               if kind == "output"]
    assert outputs == [(0, "one\n", "4"), (4, "twó <b>\n", str(4 + len("twó <b>\n".encode())))]
    states = [data["state"] for kind, data, _ in events if kind == "state"]
    assert states == ["RUNNING", "COMPLETED"]
    done = {"state": "COMPLETED", "exit_code": 0, "state_class": "result-success"}
    assert events[-1] == ("done", done, None)


@pytest_twisted.ensureDeferred
async def test_a_resumed_stream_sends_only_what_the_page_lacks_and_a_new_try_reloads_the_page(master):
    task_id = await add_task(master)
    try_number = await run(master, task_id, output=b"0123456789")
    written: list[bytes] = []
    stream = TaskOutputStream(master.db.tasks, task.Clock(), rid(task_id), try_number, False, 6)
    await stream.run(written.append)
    assert [data["text"] for kind, data, _ in sse(written) if kind == "output"] == ["6789"]

    pending = await add_task(master)
    written = []
    clock = task.Clock()
    finished = defer.ensureDeferred(
        TaskOutputStream(master.db.tasks, clock, rid(pending), 0, True, 0).run(written.append))
    await eventually(lambda: defer.succeed(bool(written)), "the first state")
    await run(master, pending, state="RUNNING")
    await until_done(clock, finished)
    assert [kind for kind, _, _ in sse(written)] == ["state", "newtry"]


@pytest_twisted.ensureDeferred
async def test_the_events_route_streams_a_finished_tasks_output_and_ends(master, site):
    task_id = await add_task(master)
    await run(master, task_id, output=b"all of it\n")
    response = await get(site, f"/tasks/{task_id}/events", {"offset": "4"})
    assert response.code == 200 and response.header("content-type") == "text/event-stream; charset=utf-8"
    kinds = [(kind, data.get("text")) for kind, data, _ in sse([response.body])]
    assert kinds == [("state", None), ("output", "of it\n"), ("done", None)]


# -- bots ---------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_fleet_is_grouped_by_the_chosen_dimension_with_each_bots_state(master, site):
    for name in ("bs1", "bs2"):
        await attach_slave(master, name)
        await eventually(lambda n=name: master.db.tasks.get_bot(n), f"the bot row of {name}")
    await master.db.tasks.set_bot("bs1", {"pool": ["ci"], "os": ["Linux"], "gpu": ["nvidia"]}, NOW)
    await master.db.tasks.set_bot("bs2", {"pool": ["ci"], "os": ["Mac"]}, NOW)
    await master.db.tasks.set_bot(HOSTILE, {"pool": ["gpu"], "os": ["Linux"]}, NOW)
    task_id = await add_task(master)
    await master.db.tasks.set_bot_state("bs1", {"attached": True}, task_id=ids.run_id(rid(task_id), 1))
    await master.db.tasks.set_bot_flags("bs2", maintenance="new disk")

    html = (await get(site, "/bots")).body.decode()
    assert '<section class="group" data-value="ci">' in html
    assert '<section class="group" data-value="gpu">' in html
    assert f'with task <a href="/tasks/{ids.run_id(rid(task_id), 1)}">' in html
    assert '<span class="state state-busy">busy</span>' in html
    assert '<span class="state state-disabled">maintenance</span>' in html
    assert '<span class="state state-lost">dead</span>' in html  # never attached
    assert HOSTILE not in html and "&lt;script&gt;" in html
    assert '<a href="/slaves/bs1">bs1</a>' in html

    by_os = (await get(site, "/bots", {"key": "os"})).body.decode()
    assert by_os.index('data-value="Linux"') < by_os.index('data-value="Mac"')
    linux = (await get(site, "/bots", {"key": "gpu", "dimension": "os:Linux"})).body.decode()
    assert 'data-bot="bs2"' not in linux and 'data-value="nvidia"' in linux
    assert 'data-value="(none)"' in linux  # the hostile bot has no gpu
    bad = await get(site, "/bots", {"dimension": "nocolon"})
    assert bad.code == 400 and b"key:value" in bad.body


@pytest_twisted.ensureDeferred
async def test_the_slave_page_shows_its_dimensions_and_recent_tasks_to_who_may_read_them(master, site):
    await master.db.tasks.set_bot("bs1", {"pool": ["ci"], "gpu": ["nvidia"]}, NOW)
    task_id = await add_task(master, name="on bs1")
    await run(master, task_id, slave="bs1", exit_code=2)
    html = (await get(site, "/slaves/bs1", headers=READER)).body.decode()
    assert '<a href="/bots?key=gpu&amp;dimension=gpu%3Anvidia"><code>nvidia</code></a>' in html
    run_id = ids.run_id(rid(task_id), 1)
    assert f'<a href="/tasks/{run_id}"><code>{run_id}</code></a></td><td>on bs1</td>' in html
    assert '<a href="/tasks?slave=bs1">' in html
    anonymous = (await get(site, "/slaves/bs1", headers={})).body.decode()
    assert 'id="slave-tasks"' not in anonymous and 'id="dimensions"' not in anonymous


# -- who may look ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_anonymous_callers_need_the_read_scopes_given_in_anonymous_scopes(master, site, tmp_path):
    task_id = await add_task(master)
    paths = ("/tasks", f"/tasks/{task_id}", f"/tasks/{task_id}/events", f"/tasks/{task_id}/output", "/bots")
    for path in paths:
        response = await get(site, path, headers={})
        assert response.code == 401 and b"Log in" in response.body, path
    refused = await render(site, "POST", f"/tasks/{task_id}/cancel")
    assert refused.code == 401

    opened = tmp_path / "open"
    opened.mkdir()
    config = MASTER_CFG + example("tasks.md", "task-pages-anonymous")
    farm = await start_memory_master(opened, config, now=NOW)
    try:
        other_site = farm.www.make_site().resource
        other = await add_task(farm)
        assert (await get(other_site, "/tasks", headers={})).code == 200
        assert (await get(other_site, f"/tasks/{other}", headers={})).code == 200
        assert (await get(other_site, "/bots", headers={})).code == 200
        assert (await get(other_site, "/", headers={})).code == 200  # the read scopes it names
        assert (await render(other_site, "POST", f"/tasks/{other}/cancel")).code == 401
    finally:
        await farm.stopService()


def test_task_states_are_coloured_as_build_results():
    assert taskpages.state_class("COMPLETED", 0) == "result-success"
    assert taskpages.state_class("COMPLETED", 1) == "result-failure"
    assert taskpages.state_class("RUNNING") == taskpages.state_class("PENDING") == "result-running"
    assert taskpages.state_class("KILLED") == taskpages.state_class("CANCELED") == "result-cancelled"
    assert taskpages.state_class("BOT_DIED") == "result-retry"
    assert taskpages.state_class("EXPIRED") == taskpages.state_class("NO_RESOURCE") == "result-exception"
