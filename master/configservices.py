"""``ConfigServices``: the Twisted services of ``c['services']``, children of the master.

Buildbot lets master.cfg add any service to the master; buildfarm runs each object of
``c['services']`` that provides ``IService`` as a child of this node, which sits after the
schedulers and the SlaveAPI and before the listeners of the master's tree (so a service may
use the database and the schedulers; it starts before slaves and web clients arrive).
A reconfig re-executes master.cfg, so its services are new objects: the old ones that are
not in the new list are stopped (each waited for), then the new ones started.  Buildbot's
reporters (master/reporters/) are such services; a new one of the same name takes over the
reports the old one left pending.
"""

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

log = Logger()


class ConfigServices(service.MultiService):
    """The parent of ``c['services']`` (see the module's docstring)."""

    name = "services"

    def __init__(self, services: list):
        super().__init__()
        for child in services:
            child.setServiceParent(self)

    async def reconfigService(self, new_config) -> None:  # noqa: N802 - Twisted's name
        """Replace the services with ``new_config.services`` (the same object stays running)."""
        wanted = list(new_config.services)
        for child in [c for c in self if not any(c is w for w in wanted)]:
            await defer.maybeDeferred(child.disownServiceParent)
        for child in wanted:
            if child.parent is not self:
                await defer.maybeDeferred(child.setServiceParent, self)  # started when self runs
        log.info("c['services']: {n} service(s) running", n=len(wanted))
