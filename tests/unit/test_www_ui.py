"""The web UI's parts in memory: login sessions on an injected clock, the build event stream
against a real database, the force form's conversion, and the same-origin checks."""

import dataclasses
import json

import pytest
import pytest_twisted
from twisted.internet import task
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyObject

from buildfarm.common.results import SUCCESS
from buildfarm.master.auth.sessions import SessionStore, session_cookie
from buildfarm.master.db.testing import add_running_build
from buildfarm.master.http.limits import HTTPLimits
from buildfarm.master.schedulers.forceparams import BooleanParameter, ChoiceStringParameter, IntParameter
from buildfarm.master.schedulers.forcesched import ForceScheduler
from buildfarm.master.www.interfaces import IWebMaster
from buildfarm.master.www.site import SiteRoot
from buildfarm.master.www.ui import forceform
from buildfarm.master.www.ui.app import PageError, WebUI, _local_path, check_same_origin
from buildfarm.master.www.ui.format import duration
from buildfarm.master.www.ui.logstream import BuildEventStream, format_positions, parse_positions
from fixtures.memorymaster import MASTER_CFG, start_memory_master

# -- sessions ------------------------------------------------------------------------------


def test_a_session_expires_after_being_idle_and_use_keeps_it_alive():
    clock = task.Clock()
    store = SessionStore(clock, idle_s=100)
    session = store.create("oncall")
    clock.advance(90)
    assert store.get(session.sid) is session
    clock.advance(90)
    assert store.get(session.sid) is session  # the last use restarted its idle time
    clock.advance(101)
    assert store.get(session.sid) is None and len(store) == 0


def test_sessions_have_random_ids_and_tokens_and_compare_tokens_exactly():
    store = SessionStore(task.Clock())
    first, second = store.create("oncall"), store.create("oncall")
    assert len({first.sid, second.sid, first.csrf_token, second.csrf_token}) == 4
    assert first.csrf_matches(first.csrf_token)
    assert not first.csrf_matches(second.csrf_token) and not first.csrf_matches(None)
    assert store.get("made-up") is None and store.get(None) is None


def test_a_full_store_forgets_its_least_recently_used_session():
    clock = task.Clock()
    store = SessionStore(clock, max_sessions=2)
    old = store.create("a")
    clock.advance(1)
    newer = store.create("b")
    clock.advance(1)
    store.create("c")
    assert store.get(old.sid) is None and store.get(newer.sid) is newer


def test_logout_and_removed_users_drop_sessions():
    store = SessionStore(task.Clock())
    mine, other = store.create("gone"), store.create("stays")
    store.drop_user("gone")
    store.drop(other.sid)
    assert store.get(mine.sid) is None and store.get(other.sid) is None


def test_the_cookie_is_httponly_samesite_and_secure_over_tls():
    assert session_cookie("abc", False) == b"buildfarm_session=abc; Path=/; HttpOnly; SameSite=Lax"
    assert session_cookie("abc", True).endswith(b"; Secure")


# -- the build event stream ----------------------------------------------------------------


def events(written: list[bytes]) -> list[tuple[str, dict, str | None]]:
    """``(event, data, id)`` of each Server-Sent Event written."""
    parsed = []
    for block in b"".join(written).decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            parsed.append((fields["event"], json.loads(fields["data"]), fields.get("id")))
    return parsed


def test_positions_round_trip_and_garbage_is_ignored():
    assert parse_positions("3:10,12:0") == {3: 10, 12: 0}
    assert format_positions({12: 0, 3: 10}) == "3:10,12:0"
    assert parse_positions("x:1,2:-1,,5:5,7") == {5: 5}
    assert parse_positions(None) == {}


@pytest_twisted.ensureDeferred
async def test_the_stream_sends_complete_lines_then_the_rest_and_ends_with_the_build(db):
    build = await add_running_build(db)
    stepid = await db.steps.add(build.buildid, 0, "compile", 1000.0)
    logid = await db.logs.add(stepid, "stdio")
    await db.logs.append(logid, "one\n<script>two</script>\nhal")
    stream = BuildEventStream(db, task.Clock(), build.buildid, {})
    written: list[bytes] = []

    assert await stream._poll(written.append) is True
    kinds = [(kind, data) for kind, data, _ in events(written)]
    assert kinds[0][0] == "step" and kinds[0][1]["result_label"] == "running"
    assert kinds[1] == ("newlog", {"step": 0, "logid": logid, "name": "stdio", "slug": "stdio",
                                   "url": f"/builds/{build.buildid}/steps/0/logs/stdio"})
    assert kinds[2] == ("lines", {"logid": logid, "text": "one\n<script>two</script>\n"})
    assert events(written)[2][2] == f"{logid}:2"  # the id a reconnecting browser sends back

    written.clear()
    await db.logs.append(logid, "f line\ntail")
    await db.logs.finish(logid)
    await db.steps.finish(stepid, SUCCESS, 1004.0, "compiled")
    await db.builds.finish(build.buildid, SUCCESS, 1005.0, "build success")
    await stream.run(written.append)
    sent = events(written)
    assert [kind for kind, _, _ in sent] == ["step", "lines", "done"]
    assert sent[0][1]["duration"] == duration(4) and sent[0][1]["result_label"] == "success"
    assert sent[1][1]["text"] == "half line\ntail"
    assert sent[2][1]["result_label"] == "success"


@pytest_twisted.ensureDeferred
async def test_a_resumed_stream_sends_only_what_the_page_lacks(db):
    build = await add_running_build(db)
    stepid = await db.steps.add(build.buildid, 0, "compile", 1000.0)
    logid = await db.logs.add(stepid, "stdio")
    await db.logs.append(logid, "".join(f"line {i}\n" for i in range(5)))
    stream = BuildEventStream(db, task.Clock(), build.buildid, parse_positions(f"{logid}:3"))
    written: list[bytes] = []
    await stream._poll(written.append)
    assert [(kind, data.get("text")) for kind, data, _ in events(written)] == [
        ("step", None), ("lines", "line 3\nline 4\n")]


# -- the force form ------------------------------------------------------------------------


def typed_scheduler() -> ForceScheduler:
    return ForceScheduler("typed", ["b"], properties=[
        IntParameter("jobs", default=2), BooleanParameter("clobber"),
        ChoiceStringParameter("flavour", choices=["opt", "debug"], multiple=True)])


def test_form_values_become_what_force_accepts():
    scheduler = typed_scheduler()
    reason, properties = forceform.submitted_values(
        scheduler, {"reason": ["why"], "jobs": [""], "flavour": ["opt", "debug"]})
    assert (reason, properties) == ("why", {"clobber": "false", "flavour": ["opt", "debug"]})
    expected = {"jobs": 2, "clobber": False, "flavour": ["opt", "debug"]}
    assert scheduler.force_properties(properties) == expected
    _, properties = forceform.submitted_values(scheduler, {"jobs": ["4"], "clobber": ["true"]})
    assert properties == {"jobs": "4", "clobber": "true", "flavour": []}


def test_a_scheduler_without_parameters_takes_free_name_value_rows():
    scheduler = ForceScheduler("force", ["b"])
    _, properties = forceform.submitted_values(
        scheduler, {"propname0": ["note"], "propvalue0": ["hi"], "propname1": [" "], "propvalue1": ["x"]})
    assert properties == {"note": "hi"}


def test_fields_show_submitted_values_over_defaults():
    fields = forceform.form_fields(typed_scheduler(), {"jobs": "7"})
    assert [(f.name, f.kind, f.value) for f in fields] == [
        ("jobs", "number", "7"), ("clobber", "checkbox", False), ("flavour", "select", [])]


# -- same origin and redirects -------------------------------------------------------------


def post(headers: dict[bytes, bytes]) -> DummyRequest:
    request = DummyRequest([b""])
    request.method = b"POST"
    request.requestHeaders.setRawHeaders(b"host", [b"farm:8010"])
    for name, value in headers.items():
        request.requestHeaders.setRawHeaders(name, [value])
    return request


@pytest.mark.parametrize("headers", [{}, {b"origin": b"http://farm:8010"}, {b"referer": b"http://farm:8010/x"}])
def test_same_site_posts_pass_the_origin_check(headers):
    check_same_origin(post(headers))


@pytest.mark.parametrize("headers", [{b"origin": b"http://evil"}, {b"origin": b"null"},
                                     {b"referer": b"https://evil/farm:8010"},
                                     {b"origin": b"http://evil", b"referer": b"http://farm:8010/"}])
def test_cross_site_posts_are_refused(headers):
    with pytest.raises(PageError) as refused:
        check_same_origin(post(headers))
    assert refused.value.status == 403


@pytest.mark.parametrize("target, expected", [
    ("/builds/3", "/builds/3"), (None, "/"), ("https://evil/", "/"), ("//evil/", "/"), ("/\\evil", "/")])
def test_login_redirects_only_to_paths_of_this_site(target, expected):
    assert _local_path(target) == expected


# -- the site root -------------------------------------------------------------------------


class Named(Resource):
    isLeaf = True

    def __init__(self, name: bytes):
        super().__init__()
        self.name = name

    def render(self, request):
        return self.name


@pytest.mark.parametrize("path, app", [
    ("/api/v1/builds", b"json"), ("/slaveapi/slaves", b"json"), ("/metrics", b"json"), ("/", b"pages"),
    ("/builds/1", b"pages"), ("/apiary", b"pages"), ("/static/style.css", b"pages"), ("/login", b"pages")])
def test_the_site_root_sends_api_paths_to_the_json_app_and_the_rest_to_the_pages(path, app):
    root = SiteRoot(Named(b"json"), Named(b"pages"))
    assert root.render(DummyRequest(path.encode().split(b"/")[1:])) == app


# -- the limits of the web port ------------------------------------------------------------

LIMITED_CFG = MASTER_CFG.replace("c['www'] = {'port': 8010}",
                                 "c['www'] = {'port': 8010, 'idle_timeout': 7, 'max_event_streams': 1}")


@pytest_twisted.ensureDeferred
async def test_the_site_and_the_live_streams_take_their_limits_from_the_masters_config(tmp_path):
    master = await start_memory_master(tmp_path, LIMITED_CFG)
    try:
        assert verifyObject(IWebMaster, master)
        site = master.www.make_site()
        assert site.limits is master.config.www_limits
        assert (site.limits.idle_timeout_s, site.timeOut, site.limits.max_event_streams) == (7, 7, 1)
        slots = WebUI(master).event_streams
        assert slots.acquire() and not slots.acquire()  # one stream at once
        # A reconfig replaces the config: the cap is read again at the next stream.
        master.config = dataclasses.replace(master.config, www_limits=HTTPLimits(max_event_streams=2))
        assert slots.acquire() and not slots.acquire()
    finally:
        await master.stopService()
