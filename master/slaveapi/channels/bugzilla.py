"""``BugzillaChannel``: the slave's problem-tracking bug, through Bugzilla 5's REST API.

Inventory (``c['slaveapi']['slaves'][name]['bugzilla']``)::

    'bugzilla': {'url': 'https://bugzilla.example.com',
                 'api_key': {'file': 'secrets/bugzilla-api-key'},  # sent as X-BUGZILLA-API-KEY
                 'product': 'Infrastructure & Operations', 'component': 'Buildduty',
                 'alias': 'bs1',             # default: the slave's name
                 'bug': 1234,                # optional: the bug's id, when it has no alias
                 'reopen_status': 'REOPENED'}  # optional: the open status a closed bug gets

Operations:

* ``bug_status``: ``GET /rest/bug/<bug or alias>`` answers ``{"id", "is_open"}``, or None
  when Bugzilla has no such bug (error 101 for an id, 100 for an alias);
* ``comment_bug`` (``text``, ``reopen``): ``POST /rest/bug/<id>/comment``, then, when
  ``reopen`` and the bug is closed, ``PUT /rest/bug/<id>`` with the open status; a slave
  without a bug gets one filed (below) with the text as its description;
* ``file_bug`` (``summary``, ``text``): comment on the slave's bug (reopening it), or
  ``POST /rest/bug`` with the product, component, summary, description and alias (version
  ``unspecified``, op_sys and platform ``All``).

Both answer the bug's id.  Bugzilla's errors (``{"error": true, "code": N, "message": ...}``)
become ``ChannelError``s naming the HTTP status, the code and Bugzilla's message.
"""

from urllib.parse import quote

import treq
from twisted.internet import defer
from zope.interface import implementer

from buildfarm.master.slaveapi.channels.interfaces import (
    BUG_STATUS,
    COMMENT_BUG,
    FILE_BUG,
    ChannelError,
    IChannel,
)
from buildfarm.master.slaveapi.channels.rest import http_call, revealed, with_deadline

SERVICE = "Bugzilla"
API_KEY_HEADER = "X-BUGZILLA-API-KEY"
DEFAULT_REOPEN_STATUS = "REOPENED"
CLOSED_STATUSES = ("RESOLVED", "VERIFIED", "CLOSED")
NO_SUCH_BUG_CODES = (100, 101)  # not a valid id nor alias; no bug with that id
MAX_COMMENT_CHARS = 65535  # Bugzilla refuses longer comments (error 114)
TRUNCATED_NOTE = "\n\n[truncated by the SlaveAPI]"
BUG_FIELDS = "id,is_open,status,resolution"
NEW_BUG_FIELDS = {"version": "unspecified", "op_sys": "All", "platform": "All"}


class BugzillaRefused(ChannelError):
    """Bugzilla answered an error; ``code`` is Bugzilla's error code (None if not Bugzilla's JSON)."""

    def __init__(self, status: int, code: int | None, message: str):
        super().__init__(message)
        self.status = status
        self.code = code


@implementer(IChannel)
class BugzillaChannel:
    """The slave's bug: its status, comments, reopening, filing (``bug_status``, ``comment_bug``,
    ``file_bug``)."""

    name = "bugzilla"
    operations = frozenset({BUG_STATUS, COMMENT_BUG, FILE_BUG})

    def __init__(self, runner, http=None):
        self.runner = runner
        self.http = http or treq

    def configured_for(self, location) -> bool:
        settings = location.channels.get(self.name, {})
        url = settings.get("url")
        has_url = isinstance(url, str) and url.startswith(("http://", "https://"))
        return has_url and bool(settings.get("api_key"))

    def perform(self, operation, location, say, clock, deadline_s, **kwargs):
        tracker = SlaveBug(self.http, location, say)
        if operation == BUG_STATUS:
            work = tracker.status()
        elif operation == COMMENT_BUG:
            work = tracker.comment(kwargs["text"], bool(kwargs.get("reopen", False)))
        elif operation == FILE_BUG:
            work = tracker.file(kwargs["summary"], kwargs["text"])
        else:
            return defer.fail(ChannelError(f"the bugzilla channel cannot {operation}"))
        return with_deadline(work, deadline_s, clock, f"Bugzilla ({operation})")


class SlaveBug:
    """One slave's bug in its Bugzilla, for one operation."""

    def __init__(self, http, location, say):
        self.http = http
        self.slave = location.name
        self.settings = location.channels[BugzillaChannel.name]
        self.say = say
        self.base = self.settings["url"].rstrip("/") + "/rest"
        self.alias = self.settings.get("alias") or location.name

    async def status(self) -> dict | None:
        bug = await self.find()
        return None if bug is None else {"id": bug["id"], "is_open": bug["is_open"]}

    async def comment(self, text: str, reopen: bool) -> int:
        bug = await self.find()
        if bug is None:
            self.say(f"{self.slave} has no bug yet; filing one")
            return await self.create(f"{self.slave} problem tracking", text)
        await self.add_comment(bug, text)
        if reopen and not bug["is_open"]:
            await self.reopen(bug)
        return bug["id"]

    async def file(self, summary: str, text: str) -> int:
        bug = await self.find()
        if bug is None:
            return await self.create(summary, text)
        self.say(f"{self.slave} already has bug {bug['id']}; asking there")
        await self.add_comment(bug, f"{summary}\n\n{text}")
        if not bug["is_open"]:
            await self.reopen(bug)
        return bug["id"]

    async def find(self) -> dict | None:
        """The slave's bug as ``{"id", "is_open", "status", "resolution"}``, or None."""
        ref = str(self.settings.get("bug") or self.alias)
        try:
            answer = await self.call("GET", f"/bug/{quote(ref, safe='')}?include_fields={BUG_FIELDS}")
        except BugzillaRefused as e:
            if e.code in NO_SUCH_BUG_CODES:
                return None
            raise
        bugs = answer.get("bugs")
        if not isinstance(bugs, list) or not bugs or not isinstance(bugs[0], dict) or "id" not in bugs[0]:
            raise ChannelError(f"Bugzilla's answer for bug {ref} has no bug in it")
        bug = bugs[0]
        status = bug.get("status") or ""
        is_open = bug["is_open"] if isinstance(bug.get("is_open"), bool) else status not in CLOSED_STATUSES
        return {"id": int(bug["id"]), "is_open": is_open, "status": status,
                "resolution": bug.get("resolution") or ""}

    async def add_comment(self, bug: dict, text: str) -> None:
        await self.call("POST", f"/bug/{bug['id']}/comment", {"comment": _fit(text)})
        self.say(f"commented on bug {bug['id']}")

    async def reopen(self, bug: dict) -> None:
        status = self.settings.get("reopen_status") or DEFAULT_REOPEN_STATUS
        await self.call("PUT", f"/bug/{bug['id']}", {"status": status})
        was = " ".join(filter(None, (bug["status"], bug["resolution"])))
        self.say(f"reopened bug {bug['id']} (it was {was or 'closed'})")

    async def create(self, summary: str, text: str) -> int:
        missing = [key for key in ("product", "component") if not self.settings.get(key)]
        if missing:
            raise ChannelError(f"cannot file a bug for {self.slave}: its bugzilla settings have no "
                               + " and no ".join(missing))
        fields = {"product": self.settings["product"], "component": self.settings["component"],
                  "summary": summary, "description": _fit(text), "alias": self.alias, **NEW_BUG_FIELDS}
        answer = await self.call("POST", "/bug", fields)
        bug_id = answer.get("id")
        if not isinstance(bug_id, int):
            raise ChannelError("Bugzilla filed the bug but did not say its id")
        self.say(f"filed bug {bug_id}: {summary}")
        return bug_id

    async def call(self, method: str, path: str, body: dict | None = None) -> dict:
        """One REST call; its JSON object, or BugzillaRefused saying what Bugzilla said."""
        headers = {API_KEY_HEADER: revealed(self.settings["api_key"]), "Accept": "application/json"}
        options = {"json": body} if body is not None else {}
        answer = await http_call(self.http, method, self.base + path, SERVICE, headers=headers, **options)
        value = answer.json()
        if answer.ok and isinstance(value, dict) and not value.get("error"):
            return value
        what = f"{method} {path.split('?')[0]}"
        if isinstance(value, dict) and value.get("error"):
            code = value.get("code")
            raise BugzillaRefused(answer.status, code if isinstance(code, int) else None,
                                  f"Bugzilla answered {answer.status} to {what} (error {code}): "
                                  f"{value.get('message') or 'no message'}")
        raise BugzillaRefused(answer.status, None, f"Bugzilla answered {answer.status} to {what} with "
                                                   f"something that is not its JSON: {answer.shown_body()!r}")


def _fit(text: str) -> str:
    """The text, cut to what Bugzilla accepts in a comment."""
    if len(text) <= MAX_COMMENT_CHARS:
        return text
    return text[:MAX_COMMENT_CHARS - len(TRUNCATED_NOTE)] + TRUNCATED_NOTE
