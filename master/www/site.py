"""``WWWService``: the master's HTTP listener (JSON API under ``/api/v1/``)."""

from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from twisted.web.server import Site

from buildfarm.master.www.api import JSONAPI

log = Logger()


class QuietSite(Site):
    """A Site without per-request access lines: API pollers would drown twistd.log."""

    def log(self, request):
        pass


class WWWService(service.Service):
    """Serves the JSON API on the configured web port."""

    name = "www"

    def __init__(self, master):
        self.master = master
        self.port = None

    def make_site(self) -> Site:
        """The twisted.web Site with every resource of the master."""
        site = QuietSite(JSONAPI(self.master).resource())
        site.displayTracebacks = False
        return site

    async def listen(self) -> None:
        """Start listening (if a web port is configured)."""
        description = self.master.config.www_port
        if not description:
            return
        endpoint = endpoints.serverFromString(self.master.reactor, description)
        self.port = await endpoint.listen(self.make_site())
        log.info("web server listening on {port}", port=description)

    def stopService(self):  # noqa: N802
        super().stopService()
        if self.port is None:
            return defer.succeed(None)
        port, self.port = self.port, None
        return defer.maybeDeferred(port.stopListening)
