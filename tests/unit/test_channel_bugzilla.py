"""The Bugzilla channel against the Bugzilla stand-in, in memory (treq's StubTreq): the
slave's bug found by alias or id, commented, reopened, filed; Bugzilla's errors told."""

import pytest
import pytest_twisted
from test_slaveapi_http import Harness, _until
from treq.testing import StubTreq
from twisted.internet import defer, task
from twisted.web.resource import Resource
from zope.interface.verify import verifyObject

from buildfarm.master.auth.secret import Secret
from buildfarm.master.slaveapi.channels.bugzilla import MAX_COMMENT_CHARS, TRUNCATED_NOTE, BugzillaChannel
from buildfarm.master.slaveapi.channels.interfaces import (
    BUG_STATUS,
    COMMENT_BUG,
    FILE_BUG,
    REBOOT,
    ChannelError,
    IChannel,
)
from buildfarm.master.slaveapi.inventory import SlaveLocation
from buildfarm.master.slaveapi.resources import BUG_STATUS_DEADLINE_S
from fixtures.bugzilla import API_KEY_HEADER, BugzillaStandIn
from fixtures.channelhost import ChannelHost

URL = "http://bugzilla.test"
KEY = "bz-api-key-0123456789"
PRODUCT, COMPONENT = "Infrastructure & Operations", "Buildduty"
DEADLINE_S = 30.0


class Tracker:
    """A Bugzilla stand-in in memory, a channel using it, and the test's own REST calls."""

    def __init__(self):
        self.standin = BugzillaStandIn({KEY: "slaveapi@example.com", "other-key": "human@example.com"},
                                       {PRODUCT: [COMPONENT]})
        self.stub = StubTreq(self.standin.resource())
        self.channel = BugzillaChannel(runner=ChannelHost(task.Clock()), http=self.stub)
        self.lines: list[str] = []

    def location(self, name: str = "bs1", **settings) -> SlaveLocation:
        return SlaveLocation(name, channels={"bugzilla": {
            "url": URL, "api_key": Secret(KEY), "product": PRODUCT, "component": COMPONENT, **settings}})

    async def perform(self, operation, where=None, **kwargs):
        return await self.channel.perform(operation, where or self.location(), self.lines.append,
                                          task.Clock(), DEADLINE_S, **kwargs)

    async def rest(self, method: str, path: str, body=None) -> dict:
        response = await self.stub.request(method, URL + "/rest" + path, json=body,
                                           headers={API_KEY_HEADER: "other-key"})
        return await self.stub.json_content(response)

    async def file_bug(self, alias: str, closed: bool = False) -> int:
        created = await self.rest("POST", "/bug", {"product": PRODUCT, "component": COMPONENT, "alias": alias,
                                                   "summary": f"{alias} problem tracking", "version": "1.0"})
        if closed:
            await self.rest("PUT", f"/bug/{created['id']}", {"status": "RESOLVED", "resolution": "FIXED"})
        self.standin.log.calls.clear()
        return created["id"]

    def writes(self) -> list[tuple[str, str, object]]:
        return [(c["method"], c["path"], c["body"]) for c in self.standin.log.calls if c["method"] != "GET"]


@pytest.fixture
def tracker():
    return Tracker()


def test_the_channel_provides_ichannel_and_needs_a_url_and_an_api_key(tracker):
    assert verifyObject(IChannel, tracker.channel)
    assert tracker.channel.operations == frozenset({BUG_STATUS, COMMENT_BUG, FILE_BUG})
    assert tracker.channel.configured_for(tracker.location())
    assert not tracker.channel.configured_for(SlaveLocation("bs1", channels={"bugzilla": {"url": URL}}))
    assert not tracker.channel.configured_for(SlaveLocation("bs1"))


@pytest_twisted.ensureDeferred
async def test_bug_status_finds_the_bug_by_the_slaves_name_with_the_api_key(tracker):
    assert await tracker.perform(BUG_STATUS) is None
    bug_id = await tracker.file_bug("bs1", closed=True)
    assert await tracker.perform(BUG_STATUS) == {"id": bug_id, "is_open": False}
    call = tracker.standin.log.calls[-1]
    assert (call["method"], call["path"], call["headers"]) == ("GET", "/rest/bug/bs1", {API_KEY_HEADER: KEY})


@pytest_twisted.ensureDeferred
async def test_bug_status_uses_the_inventory_alias_or_bug_id(tracker):
    bug_id = await tracker.file_bug("talos-r3-fed-001")
    assert await tracker.perform(BUG_STATUS, tracker.location(alias="talos-r3-fed-001")) == {
        "id": bug_id, "is_open": True}
    assert await tracker.perform(BUG_STATUS, tracker.location(bug=bug_id)) == {"id": bug_id, "is_open": True}
    assert await tracker.perform(BUG_STATUS, tracker.location(bug=99999)) is None  # Bugzilla: 404, code 101


@pytest_twisted.ensureDeferred
async def test_comment_with_reopen_comments_and_reopens_a_closed_bug(tracker):
    bug_id = await tracker.file_bug("bs1", closed=True)
    assert await tracker.perform(COMMENT_BUG, text="bs1 was disabled: bad disk", reopen=True) == bug_id
    assert tracker.writes() == [
        ("POST", f"/rest/bug/{bug_id}/comment", {"comment": "bs1 was disabled: bad disk"}),
        ("PUT", f"/rest/bug/{bug_id}", {"status": "REOPENED"})]
    bug = tracker.standin.bugs[bug_id]
    assert (bug["status"], bug["resolution"], bug["is_open"]) == ("REOPENED", "", True)
    assert tracker.lines == [f"commented on bug {bug_id}", f"reopened bug {bug_id} (it was RESOLVED FIXED)"]


@pytest_twisted.ensureDeferred
async def test_comment_without_reopen_leaves_a_closed_bug_closed(tracker):
    bug_id = await tracker.file_bug("bs1", closed=True)
    await tracker.perform(COMMENT_BUG, text="rebooted", reopen=False)
    assert [w[0] for w in tracker.writes()] == ["POST"]
    assert tracker.standin.bugs[bug_id]["status"] == "RESOLVED"


@pytest_twisted.ensureDeferred
async def test_a_custom_reopen_status_for_bugzillas_without_reopened(tracker):
    bug_id = await tracker.file_bug("bs1", closed=True)
    await tracker.perform(COMMENT_BUG, tracker.location(reopen_status="CONFIRMED"), text="again", reopen=True)
    assert tracker.standin.bugs[bug_id]["status"] == "CONFIRMED"


@pytest_twisted.ensureDeferred
async def test_a_comment_for_a_slave_without_a_bug_files_one(tracker):
    bug_id = await tracker.perform(COMMENT_BUG, text="bs1 was disabled", reopen=True)
    bug = tracker.standin.bugs[bug_id]
    assert (bug["alias"], bug["summary"], bug["is_open"]) == (["bs1"], "bs1 problem tracking", True)
    assert tracker.standin.comments[bug_id][0]["text"] == "bs1 was disabled"


@pytest_twisted.ensureDeferred
async def test_file_bug_posts_a_new_bug_with_the_inventory_fields(tracker):
    bug_id = await tracker.perform(FILE_BUG, summary="bs1 needs a manual reboot", text="tried ssh")
    assert tracker.writes() == [("POST", "/rest/bug", {
        "product": PRODUCT, "component": COMPONENT, "summary": "bs1 needs a manual reboot",
        "description": "tried ssh", "alias": "bs1", "version": "unspecified", "op_sys": "All",
        "platform": "All"})]
    assert tracker.lines == [f"filed bug {bug_id}: bs1 needs a manual reboot"]
    assert tracker.standin.bugs[bug_id]["creator"] == "slaveapi@example.com"


@pytest_twisted.ensureDeferred
async def test_file_bug_asks_in_the_existing_bug_and_reopens_it(tracker):
    bug_id = await tracker.file_bug("bs1", closed=True)
    assert await tracker.perform(FILE_BUG, summary="bs1 needs a manual reboot", text="tried ssh") == bug_id
    assert tracker.standin.comments[bug_id][-1]["text"] == "bs1 needs a manual reboot\n\ntried ssh"
    assert tracker.standin.bugs[bug_id]["status"] == "REOPENED"


@pytest_twisted.ensureDeferred
async def test_a_very_long_text_is_cut_to_what_bugzilla_accepts(tracker):
    bug_id = await tracker.file_bug("bs1")
    await tracker.perform(COMMENT_BUG, text="x" * (MAX_COMMENT_CHARS + 10), reopen=False)
    text = tracker.standin.comments[bug_id][-1]["text"]
    assert len(text) == MAX_COMMENT_CHARS and text.endswith(TRUNCATED_NOTE)


@pytest_twisted.ensureDeferred
async def test_a_bad_api_key_fails_with_bugzillas_status_and_message_and_no_key(tracker):
    where = SlaveLocation("bs1", channels={"bugzilla": {"url": URL, "api_key": Secret("stolen-key")}})
    with pytest.raises(ChannelError) as caught:
        await tracker.perform(BUG_STATUS, where)
    message = str(caught.value)
    assert "Bugzilla answered 400 to GET /bug/bs1 (error 306): The API key you specified is invalid" \
        in message
    assert "stolen-key" not in message


@pytest_twisted.ensureDeferred
async def test_filing_in_an_unknown_product_fails_with_bugzillas_message(tracker):
    refused = r"answered 401 to POST /bug \(error 106\): Product 'Nope' does not"
    with pytest.raises(ChannelError, match=refused):
        await tracker.perform(FILE_BUG, tracker.location(product="Nope"), summary="s", text="t")


@pytest_twisted.ensureDeferred
async def test_filing_without_product_and_component_settings_says_what_is_missing(tracker):
    where = SlaveLocation("bs1", channels={"bugzilla": {"url": URL, "api_key": Secret(KEY)}})
    with pytest.raises(ChannelError, match="settings have no product and no component"):
        await tracker.perform(FILE_BUG, where, summary="s", text="t")


class Broken(Resource):
    isLeaf = True

    def render(self, request):
        request.setResponseCode(502)
        return b"<html>Bad Gateway</html>"


@pytest_twisted.ensureDeferred
async def test_an_answer_that_is_not_bugzillas_json_is_told(tracker):
    channel = BugzillaChannel(runner=ChannelHost(task.Clock()), http=StubTreq(Broken()))
    with pytest.raises(ChannelError, match="answered 502 .* not its JSON: '<html>Bad Gateway</html>'"):
        await channel.perform(BUG_STATUS, tracker.location(), print, task.Clock(), DEADLINE_S)


class Silent:
    """An HTTP client whose calls are never answered (a Bugzilla that accepted and hung)."""

    def __init__(self):
        self.asked: list[str] = []

    def request(self, method, url, **kwargs):
        self.asked.append(url)
        return defer.Deferred()


@pytest_twisted.ensureDeferred
async def test_a_silent_bugzilla_fails_at_the_deadline(tracker):
    clock = task.Clock()
    d = BugzillaChannel(runner=ChannelHost(clock), http=Silent()).perform(
        COMMENT_BUG, tracker.location(), print, clock, 60, text="t", reopen=True)
    clock.advance(61)
    with pytest.raises(ChannelError, match=r"Bugzilla \(comment_bug\): no answer within 60 s"):
        await d


@pytest_twisted.ensureDeferred
async def test_other_operations_are_refused(tracker):
    with pytest.raises(ChannelError, match="cannot reboot"):
        await tracker.perform(REBOOT)


@pytest_twisted.ensureDeferred
async def test_the_standin_answers_bugzillas_errors(tracker):
    assert await tracker.rest("GET", "/bug/12345") == {
        "error": True, "code": 101, "message": "Bug #12345 does not exist.",
        "documentation": "https://bugzilla.readthedocs.org/en/5.0/api/"}
    response = await tracker.stub.post(URL + "/rest/bug", json={"product": PRODUCT})
    assert response.code == 401 and (await tracker.stub.json_content(response))["code"] == 410
    bug_id = await tracker.file_bug("bs1")
    assert (await tracker.rest("PUT", f"/bug/{bug_id}", {"status": "RESOLVED"}))["code"] == 121
    assert (await tracker.rest("POST", "/bug", {"product": PRODUCT, "component": COMPONENT, "alias": "bs1",
                                                "summary": "twin", "version": "1"}))["code"] == 103


# -- the slave's page (GET /slaves/<slave>) shows its bug --------------------------------------

async def page_harness(db_url, basedir, http):
    """A master whose SlaveAPI's bugzilla channel talks to ``http``."""
    bugzilla = {"url": URL, "api_key": KEY, "product": PRODUCT, "component": COMPONENT}
    slaves = {"bs1": {"bugzilla": bugzilla}, "bs2": {"bugzilla": {**bugzilla, "api_key": "stolen-key"}}}
    harness = await Harness(db_url, basedir, {"slaves": slaves}).start()
    harness.runner.channels["bugzilla"] = BugzillaChannel(harness.runner, http=http)
    return harness


@pytest_twisted.ensureDeferred
async def test_the_slave_page_shows_its_bug_and_null_when_bugzilla_refuses(db_url, tmp_path, tracker):
    harness = await page_harness(db_url, tmp_path, tracker.stub)
    try:
        assert (await harness.get("/slaves/bs1"))["bug"] is None  # no bug yet
        bug_id = await tracker.file_bug("bs1")
        page = await harness.get("/slaves/bs1")
        assert page["bug"] == {"id": bug_id, "is_open": True}
        assert page["channels"]["bugzilla"]["api_key"] == "(secret)"
        assert (await harness.get("/slaves/bs2"))["bug"] is None  # a bad key: still a page
    finally:
        await harness.stop()


@pytest_twisted.ensureDeferred
async def test_a_silent_bugzilla_delays_the_slave_page_only_until_its_short_deadline(db_url, tmp_path):
    silent = Silent()
    harness = await page_harness(db_url, tmp_path, silent)
    try:
        page = defer.ensureDeferred(harness.get("/slaves/bs1"))
        await _until(lambda: silent.asked)
        harness.clock.advance(BUG_STATUS_DEADLINE_S)
        assert (await page)["bug"] is None
    finally:
        await harness.stop()
