"""Listening ports as services of the master's tree.

`Listener` is a `StreamServerEndpointService` (one endpoint description, one factory) that
also tells its owner whether the port was had: `listening()` fires with the port, or fails
with the reason (`CannotListenError` for a port in use), so the master can refuse to start.

`ListeningService` is the base of the services that own a port (the PB manager, the web
site, the SlaveAPI's own port): it holds at most one `Listener` child and moves it when the
configured description changes (`listen_on`), stopping the old port before binding the new.
"""

from collections.abc import Callable

from twisted.application import service
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import defer, endpoints
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()


class Listener(StreamServerEndpointService):
    """One listening port, from a server endpoint description (``tcp:9989``, ``ssl:...``)."""

    def __init__(self, reactor, description: str, factory, label: str):
        super().__init__(endpoints.serverFromString(reactor, description), factory)
        self.description = description
        self.label = label
        self.setName(f"{label} port")
        self.port: IListeningPort | None = None
        self.failure: Failure | None = None

    def privilegedStartService(self):  # noqa: N802 - Twisted's name
        service.Service.privilegedStartService(self)
        self._waitingForPort = self.endpoint.listen(self.factory)
        self._waitingForPort.addCallbacks(self._listened, self._failed)

    def startService(self):  # noqa: N802 - Twisted's name
        service.Service.startService(self)
        if self._waitingForPort is None:
            self.privilegedStartService()

    def _listened(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        log.info("{label} listening on {port}", label=self.label, port=self.description)
        return port

    def _failed(self, failure: Failure) -> None:
        # Kept for `listening()`; the chain goes on with no port, so stopService has none to stop.
        self.failure = failure

    def listening(self) -> defer.Deferred:
        """Fires with the port once bound, or fails with the reason it could not be."""
        if self._waitingForPort is None:
            return defer.fail(RuntimeError(f"{self.label} port was not started"))
        outcome: defer.Deferred = defer.Deferred()

        def tell(port):
            if self.failure is not None:
                outcome.errback(self.failure)
            else:
                outcome.callback(port)
            return port

        self._waitingForPort.addBoth(tell)
        return outcome

    def stopService(self):  # noqa: N802 - Twisted's name
        self.port = None
        return super().stopService()


class ListeningService(service.MultiService):
    """A service that owns at most one `Listener` child, started and moved by `listen_on`."""

    listener: Listener | None = None

    @property
    def port(self) -> IListeningPort | None:
        """The bound port, if any (tests ask it for its number)."""
        return self.listener.port if self.listener is not None else None

    async def listen_on(self, reactor, description: str | None, make_factory: Callable[[], object],
                        label: str) -> None:
        """Listen on ``description`` (nothing when empty); an existing listener stays unless
        its description differs."""
        current = self.listener
        if current is not None and current.description == description:
            return
        if current is not None:
            self.listener = None
            await current.disownServiceParent()
        if not description:
            return
        self.listener = Listener(reactor, description, make_factory(), label)
        self.listener.setServiceParent(self)
        if not self.running:
            self.listener.startService()
        await self.listener.listening()

    async def stop_listening(self) -> None:
        """Stop accepting connections (those already made stay)."""
        current, self.listener = self.listener, None
        if current is not None:
            await current.disownServiceParent()
