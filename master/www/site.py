"""``WWWService``: the master's HTTP listener.

One site, five apps, chosen by the first segment of the path (``SiteRoot``): ``/api/...``,
``/slaveapi/...`` and ``/metrics`` go to the JSON app (www/api.py), ``/change_hook/...`` to the
webhooks (www/changehook.py), ``/_ah/api/swarming/...`` to the Swarming API (tasks/api.py), the
rest of ``/_ah/...`` and ``/auth/...`` to the content-addressed store's Isolate API
(cas/api.py, which also answers the sign-in paths of both), ``/browse...`` to the store's pages
(cas/browse.py, rendered by the pages' templates), everything else to the HTML pages (www/ui/).
Taskcluster's layout (docs/taskcluster.md): ``/api/buildfarm/v1/``, ``/references/`` and
``/schemas/`` are the JSON app's; ``/api/<service>/v1/<rest>`` of a service whose routes live
in another app (``API_MOUNTS``) goes to that app as ``<its base>/<rest>``.
"""

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.resource import Resource

from buildfarm.master.authapi.api import PREFIX as AUTH_API
from buildfarm.master.authapi.api import AuthAPI
from buildfarm.master.cas.api import MAX_JSON_BODY_BYTES, UPLOAD_PREFIX, IsolateAPI, cas_error_body
from buildfarm.master.cas.api import PREFIX as CAS_PATH
from buildfarm.master.cas.browse import CASBrowser
from buildfarm.master.http.limits import SLAVEAPI_MAX_BODY_BYTES
from buildfarm.master.http.site import (
    BodyRule,
    BoundedSite,
    html_error_body,
    json_error_body,
    slaveapi_error_body,
)
from buildfarm.master.listener import ListeningService
from buildfarm.master.objectservice.api import DATA_PREFIX as OBJECT_DATA
from buildfarm.master.objectservice.api import PREFIX as OBJECT_API
from buildfarm.master.objectservice.api import ObjectAPI
from buildfarm.master.queue.api import PREFIX as QUEUE_API
from buildfarm.master.queue.api import QueueAPI
from buildfarm.master.tasks.api import SwarmingAPI
from buildfarm.master.www import api
from buildfarm.master.www.api import JSONAPI
from buildfarm.master.www.changehook import MAX_HOOK_BODY_BYTES, ChangeHookAPI
from buildfarm.master.www.interfaces import IWebMaster
from buildfarm.master.www.ui import WebUI
from buildfarm.master.www.ui import app as pages

log = Logger()

# The body each part of the web port takes (the longest matching prefix wins).
BODY_RULES = (
    BodyRule("/api/", api.MAX_BODY_BYTES, json_error_body),
    BodyRule("/metrics", 0, json_error_body),
    BodyRule("/slaveapi/", SLAVEAPI_MAX_BODY_BYTES, slaveapi_error_body),
    BodyRule("/api/slaveapi/v1/", SLAVEAPI_MAX_BODY_BYTES, slaveapi_error_body),
    BodyRule("/login", pages.MAX_LOGIN_BYTES, html_error_body),
    BodyRule("/change_hook/", MAX_HOOK_BODY_BYTES, json_error_body),
)
PAGES_BODY_RULE = BodyRule("/", pages.MAX_FORM_BYTES, html_error_body)


JSON_SEGMENTS = frozenset({b"api", b"slaveapi", b"metrics", b"references", b"schemas"})
HOOK_SEGMENT = b"change_hook"
CAS_SEGMENT = b"_ah"
ISOLATE_AUTH_SEGMENT = b"auth"  # Isolate's sign-in paths, which the Isolate API answers (404 JSON)
CAS_PREFIX = "/_ah/"
# /_ah/api/swarming/... and the discovery documents (/_ah/api/discovery/...) are the Swarming
# API's; the rest of /_ah/ is Isolate's
SWARMING_SEGMENTS = ((b"api", b"swarming"), (b"api", b"discovery"))
BROWSE_SEGMENT = b"browse"
API_SEGMENT = b"api"
CAS_API = "/api/cas/v1"  # Taskcluster's layout of the Isolate API (cas/api.py) ...
TASKS_API = "/api/tasks/v1"  # ... and of the Swarming API (tasks/api.py)
API_VERSION_SEGMENT = b"v1"


def path_segments(path: str) -> tuple[bytes, ...]:
    """``"/_ah/api/swarming/v1"`` -> ``(b"_ah", b"api", b"swarming", b"v1")``; ``""`` -> ``()``."""
    return tuple(part.encode() for part in path.split("/") if part)


class SiteRoot(Resource):
    """Sends each request to the JSON app or the pages, by the first segment of its path.

    Both apps are klein resources, which route on the whole remaining path themselves: the
    root only picks one and lets it render (nothing of the path is consumed here).
    """

    isLeaf = True

    def __init__(self, json_app, pages, hooks=None, cas=None, browse=None, swarming=None, api_mounts=None):
        """``api_mounts``: ``{service name: (resource, base path)}``, the services of
        Taskcluster's layout served by another app than the JSON one."""
        super().__init__()
        self.api_mounts = {name.encode(): (resource, path_segments(base))
                           for name, (resource, base) in (api_mounts or {}).items()}
        self.json_app = json_app
        self.pages = pages
        self.hooks = hooks
        self.cas = cas
        self.browse = browse
        self.swarming = swarming

    def render(self, request):
        first = request.postpath[0] if request.postpath else b""
        mounted = self._api_mount(request.postpath)
        if mounted is not None:
            resource, base = mounted
            request.postpath = [*base, *request.postpath[3:]]
            return resource.render(request)
        if first == HOOK_SEGMENT and self.hooks is not None:
            return self.hooks.render(request)
        if (first == CAS_SEGMENT and tuple(request.postpath[1:3]) in SWARMING_SEGMENTS
                and self.swarming is not None):
            return self.swarming.render(request)
        if first in (CAS_SEGMENT, ISOLATE_AUTH_SEGMENT) and self.cas is not None:
            return self.cas.render(request)
        if first == BROWSE_SEGMENT and self.browse is not None:
            return self.browse.render(request)
        return (self.json_app if first in JSON_SEGMENTS else self.pages).render(request)


    def _api_mount(self, postpath: list[bytes]):
        if len(postpath) >= 3 and postpath[0] == API_SEGMENT and postpath[2] == API_VERSION_SEGMENT:
            return self.api_mounts.get(postpath[1])
        return None


class WWWService(ListeningService):
    """Serves the JSON API and the HTML pages on the configured web port (its `Listener`)."""

    name = "www"

    def __init__(self, master: IWebMaster):
        super().__init__()
        self.master = master

    def make_site(self) -> BoundedSite:
        """The twisted.web Site with every resource of the master."""
        cas = self.master.cas
        pages = WebUI(self.master)
        browser = CASBrowser(self.master, lambda: cas.store, pages.render, pages.stream_off_thread,
                             self.master.reactor, cas.pool)
        cas_api, swarming = cas.api.resource(), self.swarming_api().resource()
        # the apps served at /api/<service>/v1/ as well (their tables' api_base)
        # (the SlaveAPI's routes are relative: its own port serves them at /)
        mounts = {"slaveapi": (self.master.slaveapi.resource(), ""),
                  "tasks": (swarming, SwarmingAPI.routes.api_base),
                  "cas": (cas_api, IsolateAPI.routes.api_base),
                  "auth": (AuthAPI(self.master).resource(), AUTH_API),  # its routes lie at that layout
                  "queue": (QueueAPI(self.master).resource(), QUEUE_API),
                  "object": (ObjectAPI(self.master).resource(), OBJECT_API)}
        root = SiteRoot(JSONAPI(self.master).resource(), pages.resource(),
                        ChangeHookAPI(self.master).resource(), cas_api, browser.resource(), swarming, mounts)
        # a JSON call (store_inline of an .isolated) is held in memory; an upload PUT takes an
        # item, streamed to a spool file, capped by the current c['cas']['max_item_bytes']
        cas_rules = (BodyRule(CAS_PREFIX, MAX_JSON_BODY_BYTES, cas_error_body),
                     BodyRule(UPLOAD_PREFIX, cas.max_upload_bytes, cas_error_body, spool=cas.spool),
                     BodyRule(CAS_API + "/", MAX_JSON_BODY_BYTES, cas_error_body),
                     BodyRule(CAS_API + UPLOAD_PREFIX.removeprefix(CAS_PATH), cas.max_upload_bytes,
                              cas_error_body, spool=cas.spool),
                     BodyRule(TASKS_API + "/", MAX_JSON_BODY_BYTES, cas_error_body),
                     # an object's bytes PUT to its signed URL: streamed to a spool file
                     BodyRule(OBJECT_DATA, cas.max_upload_bytes, json_error_body, spool=cas.spool))
        return BoundedSite(root, (*BODY_RULES, *cas_rules), PAGES_BODY_RULE, self.master.config.www_limits,
                           self.master.reactor)

    def swarming_api(self) -> SwarmingAPI:
        """The Swarming v1 API over the master's task engine (``master.tasks``, an
        ``ITaskEngine``; until the master has one, tasks are stored and cancel/terminate
        answer 503)."""
        return SwarmingAPI(self.master, self.master.reactor)

    def startService(self):  # noqa: N802
        """Start listening (if a web port is configured); the Deferred fails when it cannot."""
        super().startService()
        return defer.ensureDeferred(self.reconfigService(self.master.config))

    async def reconfigService(self, new_config) -> None:  # noqa: N802 - Twisted's name
        """Listen on ``new_config.www_port``; a changed port moves the listener."""
        await self.listen_on(self.master.reactor, new_config.www_port, self.make_site, "web server")
