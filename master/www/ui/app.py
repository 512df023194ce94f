"""``WebUI``: the master's HTML pages, as a table of routes (documented in docs/ui.md)::

    GET  /                                            overview: builders, queue, slaves
    GET  /builders/<name>?page=N                      builds (paged), queue, force form, trends
    POST /builders/<name>/force                       scope builds:force:<builder>
    POST /buildrequests/<id>/cancel                   scope builds:cancel:<builder>
    GET  /builds/<id>                                 steps, durations, log tails
    POST /builds/<id>/stop                            scope builds:stop:<builder>
    GET  /builds/<id>/events                          Server-Sent Events of a running build
    GET  /builds/<id>/steps/<n>/logs/<slug>           one log (the tail, earlier lines on demand)
    GET  /builds/<id>/steps/<n>/logs/<slug>/raw       the whole log as a text download
    GET  /builds/<id>/steps/<n>/logs/<slug>/lines     ?first=&last= a range of lines (text)
    GET  /slaves/<name>                               info, builds, connections, actions, dimensions, tasks
    GET  /tasks                                       tasks (filters, cursors)        tasks:read
    GET  /tasks/<task_id>                             request, tries, output          tasks:read
    GET  /tasks/<task_id>/events                      Server-Sent Events of its output tasks:read
    GET  /tasks/<task_id>/output                      ?offset=&length= output as text tasks:read
    POST /tasks/<task_id>/cancel                      scope tasks:cancel:<pool> (kill=1: kill it)
    GET  /bots                                        the fleet by dimension          bots:read
    GET  /grid, /console                              changes x builders (views.py; ?rows=1: the rows)
    GET  /waterfall                                   builds as bars on a time axis (views.py)
    GET  /views/events                                Server-Sent Events of the views
    POST /slaves/<name>/actions/<action>              scope slaveapi:<action>:<slave>
    GET  /login, POST /login, POST /logout
    GET  /static/<file>

Each route declares its scope (master/http/routes.py); GETs need ``builds:read`` or
``slaves:read`` (anonymous callers hold them unless ``c['www']`` says otherwise).  Pages
are jinja2 templates with autoescaping; errors render as HTML pages with the right status,
made in one place (``PageError``, ``AuthError`` and the handlers below).  Every POST needs
a caller holding the scope and, for a login session, the session's CSRF token in the form
and an Origin or Referer of this very site (master/auth/service.py).
"""

import contextlib
import os
from collections.abc import Callable, Iterator
from functools import partial
from urllib.parse import quote, urlsplit

import jinja2
from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger
from werkzeug.exceptions import MethodNotAllowed, NotFound

from buildfarm.common.version import VERSION
from buildfarm.master.auth.authenticator import RateLimited, Unauthenticated
from buildfarm.master.auth.identity import AuthError, Identity
from buildfarm.master.auth.sessions import COOKIE_NAME, clearing_cookie, session_cookie
from buildfarm.master.db.logs import DELETED_LOG
from buildfarm.master.fleet import SLAVEAPI_READ_SCOPE, STATE_NAMES, BadArgument, action_scope
from buildfarm.master.http.flow import FlowControl, send_text, write_pieces
from buildfarm.master.http.limits import MAX_URL_INT
from buildfarm.master.http.routes import PUBLIC, RouteTable, request_identity
from buildfarm.master.http.routing import bounded_klein, parse_url_int
from buildfarm.master.http.streams import RETRY_AFTER_S, StreamSlots
from buildfarm.master.schedulers.forcesched import ForceParameterError
from buildfarm.master.schedulers.manager import NotForceable, UnknownBuilder
from buildfarm.master.status import SlaveStatus, one_slave_status
from buildfarm.master.tasks import ids
from buildfarm.master.tasks.api import CursorSigner
from buildfarm.master.tasks.interfaces import UnknownTask
from buildfarm.master.www.apidata import build_owner, environment_scope, public_info
from buildfarm.master.www.apidata import overview as overview_data
from buildfarm.master.www.interfaces import IWebMaster
from buildfarm.master.www.ui import forceform, taskpages, views
from buildfarm.master.www.ui.format import FILTERS
from buildfarm.master.www.ui.logstream import BuildEventStream, log_url, parse_positions, step_event

log = Logger()

WWW_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES_DIR = os.path.join(WWW_DIR, "templates")
STATIC_DIR = os.path.join(WWW_DIR, "static")
BUILDS_PAGE_SIZE = 25
RECENT_ON_SLAVE_PAGE = 20
TAIL_LINES = 500
MAX_RANGE_LINES = 10_000
DOWNLOAD_BATCH_LINES = 20_000
MAX_FORM_BYTES = 64 * 1024
MAX_LOGIN_BYTES = 8 * 1024  # a user name, a password, a return path and a token
STREAM_PIECE_BYTES = 256 * 1024  # a streamed page is written in pieces of about this size
STATIC_TYPES = {".css": b"text/css; charset=utf-8", ".js": b"text/javascript; charset=utf-8",
                ".png": b"image/png", ".svg": b"image/svg+xml"}
STATIC_MAX_AGE_S = 300
SLAVE_PAGE_ACTIONS = ("buildslave_uptime", "shutdown_buildslave", "reboot", "disable", "enable")
CSRF_FIELD = "csrf_token"
SECURITY_HEADERS = {
    b"content-security-policy": b"default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"same-origin",
    b"x-frame-options": b"DENY",
}


class PageError(Exception):
    """An error answered as an HTML page with an HTTP status."""

    def __init__(self, status: int, message: str, title: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.title = title


def load_static_files(directory: str = STATIC_DIR) -> dict[str, tuple[bytes, bytes]]:
    """``{file name: (content type, content)}`` of the stylesheet and scripts, read once at
    start-up (a few kilobytes) so that serving them never touches the disk."""
    files = {}
    for name in sorted(os.listdir(directory)):
        content_type = STATIC_TYPES.get(os.path.splitext(name)[1])
        if content_type is not None:
            with open(os.path.join(directory, name), "rb") as f:
                files[name] = (content_type, f.read())
    return files


class WebUI:
    """The HTML pages of one master."""

    app = bounded_klein()
    routes = RouteTable(app, "pages")

    def __init__(self, master: IWebMaster):
        self.master = master
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.templates.filters.update(FILTERS)
        self.templates.globals.update(version=VERSION, log_url=log_url)
        self.static_files = load_static_files()
        self.event_streams = StreamSlots(lambda: master.config.www_limits.max_event_streams)
        self.task_cursors = CursorSigner()
        self.view_feed = views.ViewFeed(master.db, master.mq, master.reactor)
        self.trends = views.TrendsCache(master.db, master.reactor, mq=master.mq)
        # the charts over time, cached (dropped as the master records a sample)
        self.charts = views.SampledCharts(master.db, master.reactor, master.sampler)

    def resource(self):
        """The twisted.web resource serving the pages."""
        return self.app.resource()

    @property
    def db(self):
        return self.master.db

    def now(self) -> float:
        return self.master.reactor.seconds()

    # -- plumbing --------------------------------------------------------------------------

    def render(self, request, template: str, code: int = 200, **context) -> bytes:
        """A page from ``template`` with the viewer and site in its context."""
        return self.render_template(template, self.page_context(request, code, **context))

    async def stream_off_thread(self, request, template: str, in_thread: Callable[..., defer.Deferred],
                                code: int = 200, **context) -> bytes:
        """``render``'s page, rendered by ``in_thread(fn, *args)`` (a thread pool) and sent in
        pieces of about ``STREAM_PIECE_BYTES``, each once the client took the previous one: a
        tree page of 10,000 files is ~0.4 s of Jinja and 7 MB that must neither stop the
        reactor nor sit whole in memory.  The status, headers and the context's defaults are
        set here, on the reactor thread; the bytes sent are ``render``'s.  Answers ``b""``
        (the handler's return value: the page is already written)."""
        context = self.page_context(request, code, **context)
        pieces = await in_thread(self.page_pieces, template, context)

        async def rendered():
            while piece := await in_thread(next, pieces, b""):
                yield piece

        try:
            await write_pieces(request, rendered())
        except Exception:
            if not request.startedWriting:
                raise  # the error page goes instead
            # Part of the page is sent: no error page can follow.  Cutting the connection
            # (no last chunk) tells the client the page is incomplete.
            log.failure("page {path} failed half way", path=request.path)
            request.loseConnection()
        finally:
            await in_thread(_close_pieces, pieces)  # a client that left: Jinja's work ends there
        return b""

    def page_pieces(self, template: str, context: dict) -> Iterator[bytes]:
        """``template`` rendered with ``context`` as UTF-8 pieces of at least
        ``STREAM_PIECE_BYTES`` (the last one shorter), made as they are asked for (blocking:
        call ``next`` on a thread, one thread at a time)."""
        parts = self.templates.get_template(template).generate(**context)
        return _batched(parts, STREAM_PIECE_BYTES)

    def page_context(self, request, code: int = 200, **context) -> dict:
        """Set the status and a page's headers on ``request``; ``context`` with the viewer and
        the site's defaults added (reactor thread: it reads the request and the config)."""
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        context.setdefault("viewer", self.viewer(request))
        context.setdefault("title", self.master.config.title)
        context.setdefault("site_title", self.master.config.title)
        context.setdefault("site_title_url", self.master.config.title_url or "/")
        context.setdefault("now", self.now())
        context.setdefault("here", request.uri.decode("utf-8", "replace"))
        return context

    def render_template(self, template: str, context: dict) -> bytes:
        """``template`` rendered with ``context`` (thread-safe: Jinja's environment and its
        template cache are, and nothing here touches the request or the master)."""
        return self.templates.get_template(template).render(**context).encode("utf-8")

    @app.handle_errors(PageError)
    def _page_error(self, request, failure):
        error = failure.value
        return self.render(request, "error.html", error.status, title=error.title or "Error",
                           status=error.status, message=error.message)

    @app.handle_errors(AuthError)
    def _auth_error(self, request, failure):
        error = failure.value
        if error.retry_after_header() is not None:
            request.setHeader(b"retry-after", error.retry_after_header())
        if error.status == 401 and request.method == b"GET":
            title, message = "Login required", "Log in to see this page."
        elif error.status == 401:
            title, message = "Login required", "Log in to do this: anonymous users may look, not act."
        elif error.status == 429:
            title, message = "Too many attempts", error.message
        else:
            title, message = "Forbidden", error.message
        return self.render(request, "error.html", error.status, title=title, status=error.status,
                           message=message)

    @app.handle_errors(NotFound)
    def _not_found(self, request, failure):
        return self.render(request, "error.html", 404, title="Not found", status=404,
                           message=f"There is no page at {request.path.decode('utf-8', 'replace')}.")

    @app.handle_errors(MethodNotAllowed)
    def _bad_method(self, request, failure):
        return self.render(request, "error.html", 405, title="Method not allowed", status=405,
                           message=f"{request.method.decode()} is not allowed here.")

    @app.handle_errors(Exception)
    def _internal_error(self, request, failure):
        log.failure("page {path} failed", failure, path=request.path)
        return self.render(request, "error.html", 500, title="Internal error", status=500,
                           message="Something went wrong; the master's twistd.log says what.")

    def viewer(self, request) -> Identity:
        """Who the route table found this request comes from (anonymous if it did not get
        that far): what the pages show and which buttons they enable."""
        identity = getattr(request, "_buildfarm_identity", None)
        return identity if identity is not None else self.master.auth.anonymous()

    async def _request_builder(self, request, brid: int) -> dict:
        row = await self.db.buildrequests.get(brid)
        if row is None:
            raise PageError(404, f"There is no build request {brid}.", "Not found")
        return {"builder": row["buildername"]}

    async def _build_builder(self, request, buildid: int) -> dict:
        """The build's builder (its scope) and owner (whose owner scopes count)."""
        build = await self.get_build(buildid)
        return {"builder": build["buildername"], "owner": await build_owner(self.db, build)}

    async def _canonical_action(self, request, name: str, action: str) -> dict:
        chosen = self.master.slaveapi.action(action)
        return {"action": chosen.name if chosen else action}

    # -- overview ---------------------------------------------------------------------------

    @routes.route("/", "GET", scope="builds:read")
    async def overview(self, request):
        view = await overview_data(self.master)  # the JSON API's overview, the one builder
        return self.render(request, "overview.html",
                           builders=sorted(view["builders"], key=lambda b: b["name"]),
                           pending=view["pending_buildrequests"], slaves=view["slaves"],
                           fleet=await self.charts.fleet())  # charts over time

    async def pending_requests(self, builderid: int | None = None) -> list[dict]:
        rows = await self.db.buildrequests.get_all(builderid=builderid, complete=False)
        now = self.now()
        return [{**row, "age": now - row["submitted_at"]} for row in reversed(rows) if not row["claimed"]]

    def slave_summary(self, status: SlaveStatus) -> dict:
        """A slave's state on the pages (master/status.py computes it)."""
        return {"name": status.name, "state": status.state, "attached": status.attached,
                "connected": status.connected, "running": status.running_builds,
                "enabled": status.enabled, "last_seen": status.last_seen,
                "configured": status.name in self.master.config.slaves,
                "disabled_reason": status.disabled_reason}

    # -- builders ---------------------------------------------------------------------------

    @routes.route("/builders/<string:name>", "GET", scope="builds:read")
    async def builder(self, request, name):
        return await self.builder_page(request, name)

    async def builder_page(self, request, name: str, status: int = 200, values: dict | None = None,
                           errors: dict | None = None) -> bytes:
        builder = self.master.botmaster.builders.get(name)
        if builder is None:
            raise PageError(404, f"There is no builder named {name!r}.", "Not found")
        page = _int_query(request, "page", 1, 1)
        rows = await self.db.builds.get_all(builderid=builder.builderid, limit=BUILDS_PAGE_SIZE + 1,
                                            offset=(page - 1) * BUILDS_PAGE_SIZE)
        try:
            scheduler = self.master.scheduler.force_scheduler_for(name)
        except (NotForceable, UnknownBuilder):
            scheduler = None
        form = None
        if scheduler is not None:
            form = {"fields": forceform.form_fields(scheduler, values),
                    "reason": (values or {}).get("reason", scheduler.default_reason),
                    "free_rows": [] if scheduler.parameters else list(range(forceform.FREE_PROPERTY_ROWS)),
                    "free_values": values or {},
                    "button": scheduler.buttonName or "Force build"}
        forced = _int_query(request, "forced", None, 1)
        trends = await self.trends.get(builder.builderid)  # views.py: cached, read in a thread
        return self.render(
            request, "builder.html", status, title=f"Builder {name}", builder=builder,
            builds=rows[:BUILDS_PAGE_SIZE], page=page, has_next=len(rows) > BUILDS_PAGE_SIZE,
            pending=await self.pending_requests(builder.builderid), form=form, errors=errors or {},
            forced=forced, trends=trends, charts=views.trend_charts(trends), trend_days=views.TREND_DAYS,
            chart_duration=views.duration_label)

    @routes.route("/builders/<string:name>/force", "POST", scope="builds:force:{name}")
    async def force(self, request, name):
        if name not in self.master.botmaster.builders:
            raise PageError(404, f"There is no builder named {name!r}.", "Not found")
        account = request_identity(request)
        try:
            scheduler = self.master.scheduler.force_scheduler_for(name)
        except NotForceable as e:
            raise PageError(400, str(e), "Cannot force") from None
        form = _form(request)
        reason, properties = forceform.submitted_values(scheduler, form)
        try:
            brid = await self.master.scheduler.force(name, reason, properties, account.name)
        except ForceParameterError as e:
            values = {key: (vals if len(vals) > 1 else vals[-1]) for key, vals in form.items()}
            return await self.builder_page(request, name, 400, values, {e.field: e.message})
        return _redirect(request, f"/builders/{quote(name)}?forced={brid}")

    @routes.route("/buildrequests/<int:brid>/cancel", "POST", scope="builds:cancel:{builder}",
                  resolve=_request_builder)
    async def cancel_request(self, request, brid):
        row = await self.db.buildrequests.get(brid)
        if not await self.db.buildrequests.cancel(brid, self.now()):
            raise PageError(409, f"Build request {brid} is already running or finished: stop its build.",
                            "Too late")
        self.master.botmaster.tell_schedulers(await self.db.buildrequests.get(brid))
        return _redirect(request, f"/builders/{quote(row['buildername'])}")

    # -- builds -----------------------------------------------------------------------------

    async def get_build(self, buildid: int) -> dict:
        build = await self.db.builds.get(buildid)
        if build is None:
            raise PageError(404, f"There is no build {buildid}.", "Not found")
        return build

    @routes.route("/builds/<int:buildid>", "GET", scope="builds:read")
    async def build(self, request, buildid):
        build = await self.get_build(buildid)
        now = self.now()
        steps = []
        for step in await self.db.steps.get_all(buildid):
            logs = [await self.log_tail(entry) for entry in await self.db.logs.get_all(step["stepid"])]
            steps.append({**step, **step_event(step, now), "logs": logs})
        positions = ",".join(f"{lg['logid']}:{lg['next_line']}" for s in steps for lg in s["logs"])
        end = build["complete_at"] if build["complete"] else now
        return self.render(
            request, "build.html", title=f"{build['buildername']} #{build['number']}", build=build,
            steps=steps, positions=positions, duration=end - build["started_at"],
            running_here=self.master.botmaster.running_build(buildid) is not None,
            properties=sorted((build["properties"] or {}).items()))

    async def log_tail(self, entry: dict) -> dict:
        """A log as the build page shows it: its last ``TAIL_LINES`` lines, and where the
        live stream continues (``next_line``); ``deleted`` when the janitor deleted its text."""
        # Lines 0 .. num_lines-1 are complete; a complete log may end with a partial line.
        end = entry["num_lines"] + 1 if entry["complete"] else entry["num_lines"]
        if entry["type"] == DELETED_LOG:
            return {**entry, "text": "", "first_line": 0, "next_line": end, "deleted": True}
        first = max(0, end - TAIL_LINES)
        text = await self.db.logs.get_text_range(entry["logid"], first, end - 1) if end > first else ""
        return {**entry, "text": text, "first_line": first, "next_line": end, "deleted": False}

    @routes.route("/builds/<int:buildid>/stop", "POST", scope="builds:stop:{builder}",
                  resolve=_build_builder)
    async def stop(self, request, buildid):
        account = request_identity(request)
        running = self.master.botmaster.running_build(buildid)
        if running is None:
            raise PageError(409, f"Build {buildid} is not running on this master.", "Not running")
        running.stop(f"stopped by {account.audit_name} from the web UI")
        return _redirect(request, f"/builds/{buildid}")

    @routes.route("/builds/<int:buildid>/events", "GET", scope="builds:read")
    async def events(self, request, buildid):
        await self.get_build(buildid)
        resume = request.getHeader(b"last-event-id")
        positions = parse_positions(resume or _query(request, "logs"))
        return await self._serve_events(request, lambda: BuildEventStream(
            self.db, self.master.reactor, buildid, positions, bus=self.master.logbus,
            running_here=lambda: self.master.botmaster.running_build(buildid) is not None))

    async def _serve_events(self, request, make_stream) -> bytes:
        """Answer with the Server-Sent Events of ``make_stream()`` (a build's logs, a task's
        output), one of the ``max_event_streams`` slots, under the request's flow control."""
        if not self.event_streams.acquire():
            request.setHeader(b"retry-after", str(RETRY_AFTER_S).encode())
            raise PageError(503, "Too many live log streams are open; try again shortly.", "Busy")
        try:
            request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
            request.setHeader(b"cache-control", b"no-store")
            request.setHeader(b"x-accel-buffering", b"no")
            request.write(b"retry: 2000\n\n")
            flow = FlowControl()
            request.registerProducer(flow, True)
            await make_stream().run(request.write, flow.wait_until_wanted)
        finally:
            self.event_streams.release()
            if request.producer is not None and request.channel is not None:
                request.unregisterProducer()
        return b""

    async def get_log(self, buildid: int, number: int, slug: str) -> tuple[dict, dict]:
        build = await self.get_build(buildid)
        step = await self.db.steps.get(buildid, number)
        if step is None:
            raise PageError(404, f"Build {buildid} has no step {number}.", "Not found")
        entry = await self.db.logs.get_by_slug(step["stepid"], slug)
        if entry is None:
            raise PageError(404, f"Step {number} of build {buildid} has no log {slug!r}.", "Not found")
        return build, {**step, "log": entry}

    @routes.route("/builds/<int:buildid>/steps/<int:number>/logs/<string:slug>", "GET", scope="builds:read")
    async def log_page(self, request, buildid, number, slug):
        build, step = await self.get_log(buildid, number, slug)
        title = f"{step['log']['name']} of {build['buildername']} #{build['number']}"
        return self.render(request, "log.html", title=title, build=build, step=step,
                           log=await self.log_tail(step["log"]))

    @routes.route("/builds/<int:buildid>/steps/<int:number>/logs/<string:slug>/lines", "GET",
                  scope="builds:read")
    async def log_lines(self, request, buildid, number, slug):
        _, step = await self.get_log(buildid, number, slug)
        first = _int_query(request, "first", 0, 0)
        last = _int_query(request, "last", first + MAX_RANGE_LINES - 1, 0)
        if last < first or last - first >= MAX_RANGE_LINES:
            raise PageError(400, f"last must be between first and first + {MAX_RANGE_LINES - 1}.",
                            "Bad range")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"x-content-type-options", b"nosniff")
        return (await self.db.logs.get_text_range(step["log"]["logid"], first, last)).encode("utf-8")

    @routes.route("/builds/<int:buildid>/steps/<int:number>/logs/<string:slug>/raw", "GET",
                  scope="builds:read")
    async def log_download(self, request, buildid, number, slug):
        """The whole log, read and sent in batches of lines (a huge log is never whole in memory)."""
        build, step = await self.get_log(buildid, number, slug)
        entry = step["log"]
        filename = f"{build['buildername']}-{build['number']}-{number}-{slug}.txt"
        return await send_text(request, partial(self.db.logs.get_text_range, entry["logid"]),
                               entry["num_lines"], DOWNLOAD_BATCH_LINES, filename)

    # -- slaves -----------------------------------------------------------------------------

    @routes.route("/slaves/<string:name>", "GET", scope="slaves:read")
    async def slave(self, request, name):
        row = await self.known_slave(name)
        settings = await self.db.slaveapi.get_settings(name)
        live = self.master.botmaster.slaves.get(name)
        info = (row or {}).get("info") or (live.info if live is not None else {})
        builds = []
        if row is not None:
            builds = await self.db.builds.get_all(slaveid=row["slaveid"], limit=RECENT_ON_SLAVE_PAGE)
        viewer = self.viewer(request)
        # The SlaveAPI's results and audit follow the SlaveAPI's read scope.
        may_read_slaveapi = viewer.may(SLAVEAPI_READ_SCOPE)
        results = await self.master.slaveapi.results(name) if may_read_slaveapi else []
        audit = (await self.db.slaveapi.get_audit(name, limit=RECENT_ON_SLAVE_PAGE)
                 if may_read_slaveapi else [])
        actions = [{"name": action, "allowed": viewer.may(action_scope(action, name)),
                    "scope": action_scope(action, name),
                    "description": self.master.slaveapi.action(action).description}
                   for action in SLAVE_PAGE_ACTIONS if self.master.slaveapi.action(action) is not None]
        status = await one_slave_status(self.master, name, row, settings)
        bot, tasks = None, []
        if viewer.may("bots:read") or viewer.may("tasks:read"):
            bot, tasks = await taskpages.slave_tasks(self.db.tasks, name)
        return self.render(
            request, "slave.html", title=f"Slave {name}", name=name, row=row or {}, settings=settings,
            summary=self.slave_summary(status), live=live,
            info=sorted(public_info(info, viewer.may(environment_scope(name))).items()),
            version=live.version if live is not None else (row or {}).get("version"),
            commands=sorted(live.commands.items()) if live is not None else [],
            builds=builds, results=list(reversed(results))[:RECENT_ON_SLAVE_PAGE],
            state_names=STATE_NAMES, actions=actions,
            audit=audit, bot=bot if viewer.may("bots:read") else None,
            tasks=tasks if viewer.may("tasks:read") else None,
            connections=await self.db.slaves.get_connections(name, RECENT_ON_SLAVE_PAGE),
            requested=_int_query(request, "requested", None, 1))

    async def known_slave(self, name: str) -> dict | None:
        row = await self.db.slaves.get(name)
        if row is None and name not in self.master.config.slaves and \
                name not in self.master.slaveapi.settings.slaves:
            raise PageError(404, f"There is no slave named {name!r}.", "Not found")
        return row

    @routes.route("/slaves/<string:name>/actions/<string:action>", "POST", scope="slaveapi:{action}:{name}",
                  resolve=_canonical_action)
    async def slave_action(self, request, name, action):
        await self.known_slave(name)
        chosen = self.master.slaveapi.action(action)
        if chosen is None:
            raise PageError(404, f"There is no action named {action!r}.", "Not found")
        account = request_identity(request)
        given = {key: values[-1] for key, values in _form(request).items()
                 if key != CSRF_FIELD and values[-1] != ""}
        try:
            args = chosen.parse_args(given)
        except BadArgument as e:
            raise PageError(400, str(e), "Bad argument") from None
        result = await self.master.slaveapi.submit(name, chosen, args, account.audit_name, _peer(request))
        return _redirect(request, f"/slaves/{quote(name)}?requested={result.requestid}")

    # -- tasks and bots (the logic is in taskpages.py) ---------------------------------------

    @routes.route("/tasks", "GET", scope="tasks:read")
    async def tasks(self, request):
        with _bad_filter():
            flt = taskpages.parse_filter(partial(_query_all, request))
            cursor = (_query(request, "cursor") or "")[:taskpages.MAX_FILTER_CHARS * 4]
            page = await taskpages.TaskList(self.db.tasks, self.task_cursors).page(flt, cursor)
        now = self.now()
        return self.render(request, "tasks.html", title="Tasks",
                           tasks=[taskpages.task_row(r, now) for r in page.tasks],
                           filter=flt.form, states=list(taskpages.STATE_FILTERS),
                           next_url=taskpages.list_url(flt, page.cursor) if page.cursor else None,
                           first_url=taskpages.list_url(flt), first_page=not cursor, scanned=page.scanned,
                           scan_limited=page.limited, tasks_chart=await self.charts.tasks())

    async def task_view(self, task_id: str) -> dict:
        with _bad_filter():
            return await taskpages.task_view(self.db.tasks, task_id, self.now())

    @routes.route("/tasks/<string:task_id>", "GET", scope="tasks:read")
    async def task(self, request, task_id):
        view = await self.task_view(task_id)
        title = f"Task {view['name']}" + (f" (try {view['try_number']})" if view["try_number"] else "")
        return self.render(request, "task.html", title=title, task=view,
                           cancel_scope=f"tasks:cancel:{view['pool']}",
                           canceled=_query(request, "canceled"))

    @routes.route("/tasks/<string:task_id>/output", "GET", scope="tasks:read")
    async def task_output(self, request, task_id):
        with _bad_filter():
            request_id, _, shown = await taskpages.shown_try(self.db.tasks, task_id)
        offset = _int_query(request, "offset", 0, 0)
        length = min(_int_query(request, "length", taskpages.MAX_OUTPUT_READ_BYTES, 0),
                     taskpages.MAX_OUTPUT_READ_BYTES)
        data = await self.db.tasks.get_output(request_id, shown, offset, length) if shown else b""
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"cache-control", b"no-store")
        return data

    @routes.route("/tasks/<string:task_id>/events", "GET", scope="tasks:read")
    async def task_events(self, request, task_id):
        with _bad_filter():
            request_id, try_number, shown = await taskpages.shown_try(self.db.tasks, task_id)
        resume = request.getHeader(b"last-event-id")
        offset = parse_url_int(resume.decode("ascii", "replace")) if resume else None
        if offset is None:
            offset = _int_query(request, "offset", 0, 0)
        # The try the page shows (a summary's page may be older than the task's last try:
        # the stream then says ``newtry``).
        shown_try = try_number or _int_query(request, "try", shown, 0)
        return await self._serve_events(request, lambda: taskpages.TaskOutputStream(
            self.db.tasks, self.master.reactor, request_id, shown_try, not try_number, offset))

    async def _task_pool(self, request, task_id: str) -> dict:
        with _bad_filter():
            return {"pool": await taskpages.task_pool(self.db.tasks, task_id)}

    @routes.route("/tasks/<string:task_id>/cancel", "POST", scope="tasks:cancel:{pool}", resolve=_task_pool)
    async def task_cancel(self, request, task_id):
        request_id, _ = taskpages.parse_id(task_id)
        kill = _form_value(request, "kill") == "1"
        if self.master.tasks is None:
            raise PageError(503, "The task engine is not running.", "Unavailable")
        try:
            ok, was_running = await self.master.tasks.cancel(request_id, kill)
        except UnknownTask:
            raise PageError(404, f"There is no task {task_id}.", "Not found") from None
        if not ok:
            why = "it is running: kill it instead" if was_running and not kill else "it has already ended"
            raise PageError(409, f"Task {task_id} was not canceled: {why}.", "Too late")
        summary = ids.summary_id(request_id)
        return _redirect(request, f"/tasks/{summary}?canceled={'killed' if kill else 'canceled'}")

    @routes.route("/bots", "GET", scope="bots:read")
    async def bots(self, request):
        with _bad_filter():
            key = (_query(request, "key") or taskpages.DEFAULT_GROUP_KEY).strip()[:taskpages.MAX_FILTER_CHARS]
            wanted = taskpages.parse_pairs(_query_all(request, "dimension"))
        view = await taskpages.fleet_view(self.master, key, wanted)
        return self.render(request, "bots.html", title="Bots", fleet=view,
                           states=await self.charts.bot_states(),  # over time: every bot, unfiltered
                           may_read_tasks=self.viewer(request).may("tasks:read"))

    # -- views (the logic is in views.py) ---------------------------------------------------

    @routes.route("/grid", "GET", scope="builds:read")
    async def grid(self, request):
        return await self.grid_page(request, "grid.html", "Grid")

    @routes.route("/console", "GET", scope="builds:read")
    async def console(self, request):
        return await self.grid_page(request, "console.html", "Console")

    async def grid_page(self, request, template: str, title: str) -> bytes:
        with _bad_filter():
            flt = views.parse_grid_filter(partial(_query_all, request))
        view = await views.grid_view(self.db, self.master.botmaster.builders, flt)
        if _query(request, "rows") == "1":  # the live refresh of the table's rows
            template = f"_{template.split('.')[0]}_rows.html"
        return await self.render_view(request, template, title=title, view=view,
                                      result_symbols=views.RESULT_SYMBOLS)

    async def render_view(self, request, template: str, **context) -> bytes:
        """A view's page, rendered on the reactor's thread pool and streamed (100 builders x
        50 changes is ~1 MB of Jinja work, too slow for the reactor thread); rendered here
        under a reactor without threads (the tests' memory reactor)."""
        reactor = self.master.reactor
        if not IReactorThreads.providedBy(reactor):
            return self.render(request, template, **context)
        in_thread = partial(threads.deferToThreadPool, reactor, reactor.getThreadPool())
        return await self.stream_off_thread(request, template, in_thread, **context)

    @routes.route("/waterfall", "GET", scope="builds:read")
    async def waterfall(self, request):
        with _bad_filter():
            flt = views.parse_waterfall_filter(partial(_query_all, request), self.now())
        view = await views.waterfall_view(self.db, self.master.botmaster.builders, flt, self.now())
        return await self.render_view(request, "waterfall.html", title="Waterfall", view=view,
                                      result_symbols=views.RESULT_SYMBOLS)

    @routes.route("/views/events", "GET", scope="builds:read")
    async def view_events(self, request):
        # A client that does not ask for an event stream (no ``Accept: text/event-stream``, which
        # every EventSource sends) gets the first event and the end of the answer, not a wait.
        streaming = b"text/event-stream" in (request.getHeader(b"accept") or b"")
        max_s = views.MAX_STREAM_S if streaming else 0.0
        return await self._serve_events(
            request, lambda: views.ViewEventStream(self.view_feed, self.master.reactor, max_s))

    # -- login ------------------------------------------------------------------------------

    @routes.route("/login", "GET", scope=PUBLIC)
    def login_form(self, request):
        return self.render(request, "login.html", title="Log in", error=None, username="",
                           next=_local_path(_query(request, "next")))

    @routes.route("/login", "POST", scope=PUBLIC)
    async def login(self, request):
        check_same_origin(request)
        username = _form_value(request, "username") or ""
        password = _form_value(request, "password") or ""
        target = _local_path(_form_value(request, "next"))
        peer = _peer(request)
        try:
            account = await self.master.auth.check_password(username, password, peer)
        except RateLimited as e:
            log.info("web UI: login for {user} from {peer} refused: {why}", user=username, peer=peer,
                     why=str(e))
            request.setHeader(b"retry-after", str(e.retry_after).encode())
            return self.render(request, "login.html", 429, title="Log in", username=username, next=target,
                               error=f"Too many failed logins; try again in {e.retry_after} s.",
                               viewer=self.master.auth.anonymous())
        except Unauthenticated:
            log.info("web UI: failed login for {user} from {peer}", user=username, peer=_peer(request))
            return self.render(request, "login.html", 401, title="Log in", username=username, next=target,
                               error="Wrong user name or password.", viewer=self.master.auth.anonymous())
        self.master.auth.sessions.drop(_cookie(request))
        session = self.master.auth.sessions.create(account.name)
        request.responseHeaders.addRawHeader(b"set-cookie", session_cookie(session.sid, request.isSecure()))
        log.info("web UI: {user} logged in from {peer}", user=account.name, peer=_peer(request))
        return _redirect(request, target)

    @routes.route("/logout", "POST", scope=PUBLIC)
    def logout(self, request):
        check_same_origin(request)
        # Whatever the form holds, the session of this cookie ends on the server too.
        self.master.auth.sessions.drop(_cookie(request))
        request.responseHeaders.addRawHeader(b"set-cookie", clearing_cookie())
        return _redirect(request, "/")

    @routes.route("/static/<string:name>", "GET", scope=PUBLIC)
    def static(self, request, name):
        if name not in self.static_files:
            raise PageError(404, f"There is no static file {name!r}.", "Not found")
        content_type, content = self.static_files[name]
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"cache-control", f"max-age={STATIC_MAX_AGE_S}".encode())
        request.setHeader(b"x-content-type-options", b"nosniff")
        return content


# -- request helpers ---------------------------------------------------------------------

def _close_pieces(pieces) -> None:
    """Close a page's generator; one still making a piece (the handler was cancelled while it
    ran on another thread) cannot be closed: it is left to finish that piece and be collected."""
    try:
        pieces.close()
    except ValueError:  # "generator already executing"
        pass


def _batched(parts: Iterator[str], size: int) -> Iterator[bytes]:
    """The strings of ``parts`` joined into UTF-8 pieces of at least ``size`` characters."""
    batch: list[str] = []
    count = 0
    for part in parts:
        batch.append(part)
        count += len(part)
        if count >= size:
            yield "".join(batch).encode("utf-8")
            batch, count = [], 0
    if batch:
        yield "".join(batch).encode("utf-8")


def check_same_origin(request) -> None:
    """Refuse a POST whose Origin (or, lacking one, Referer) is another site than ours."""
    host = request.getHeader(b"host")
    origin = request.getHeader(b"origin")
    source = origin if origin is not None else request.getHeader(b"referer")
    if source is None:
        return  # no header to judge (not a browser): the CSRF token still has to match
    netloc = urlsplit(source.decode("latin-1")).netloc
    if host is None or source == b"null" or netloc != host.decode("latin-1"):
        raise PageError(403, "This form was posted from another site; refused (cross-site request "
                             "forgery protection).", "Forbidden")


def _cookie(request) -> str | None:
    value = request.getCookie(COOKIE_NAME)
    return value.decode("ascii", "replace") if value else None


def _form(request) -> dict[str, list[str]]:
    if request.content is not None:
        request.content.seek(0, os.SEEK_END)
        if request.content.tell() > MAX_FORM_BYTES:
            raise PageError(413, f"The form is over {MAX_FORM_BYTES} bytes.", "Too large")
    return {key.decode("utf-8", "replace"): [v.decode("utf-8", "replace") for v in values]
            for key, values in request.args.items()}


def _form_value(request, name: str) -> str | None:
    values = request.args.get(name.encode())
    return values[-1].decode("utf-8", "replace") if values else None


_query = _form_value


def _query_all(request, name: str) -> list[str]:
    return [v.decode("utf-8", "replace") for v in request.args.get(name.encode(), [])]


@contextlib.contextmanager
def _bad_filter():
    """A bad filter or task id is a 400 page naming it; an unknown task a 404 page."""
    try:
        yield
    except taskpages.BadFilter as e:
        raise PageError(400, str(e), "Bad request") from None
    except taskpages.NoSuchTask as e:
        raise PageError(404, str(e), "Not found") from None
    except views.BadViewFilter as e:
        raise PageError(400, str(e), "Bad request") from None


def _int_query(request, name: str, default: int | None, minimum: int) -> int | None:
    value = _query(request, name)
    if value is None or value == "":
        return default
    number = parse_url_int(value, minimum)
    if number is None:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise PageError(400, f"{name} must be an integer from {minimum} to {MAX_URL_INT}, not {shown!r}.",
                        "Bad request")
    return number


def _local_path(target: str | None) -> str:
    """``target`` if it is a path of this site, else ``/`` (no open redirects).

    Browsers parse a Location as the WHATWG URL standard says: they drop tabs and newlines,
    read a backslash as a slash and ``//host`` as another site.  So only a path that starts
    with one ``/`` and holds no control character nor backslash is taken.
    """
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in target):
        return "/"
    return target


def _redirect(request, location: str) -> bytes:
    request.setResponseCode(303)
    request.setHeader(b"location", location.encode("utf-8"))
    return b""


def _peer(request) -> str:
    return getattr(request.getClientAddress(), "host", None) or "?"
