"""Clients of buildfarm's services, made by the official Taskcluster client (docs/client.md).

``Buildfarm``, ``SlaveAPI``, ``Tasks`` and ``CAS`` (sync), and ``AsyncBuildfarm``,
``AsyncSlaveAPI``, ``AsyncTasks`` and ``AsyncCAS`` (``taskcluster.aio``) are classes made by
Taskcluster's ``createApiClient`` (``taskcluster.client`` and ``taskcluster.aio.asyncclient``)
from the API references shipped in this package
(common/references/<service>.json, the very documents a master serves at
``/references/<service>/v1/api.json``; a test keeps them equal).  They take Taskcluster's
options: ``{"rootUrl": "http://master:8010", "credentials": {"clientId": ..., "accessToken":
...}}``, or ``optionsFromEnvironment()`` (``TASKCLUSTER_ROOT_URL``, ``TASKCLUSTER_CLIENT_ID``,
``TASKCLUSTER_ACCESS_TOKEN``, ``TASKCLUSTER_CERTIFICATE``).

Every paged call (a reference entry whose query takes ``continuationToken``, or Swarming's
``cursor`` for the tasks service) also gets an iterator over its items, named ``iter`` + the
call: ``Buildfarm(options).iterListBuilders()`` yields every builder, page after page (an
async iterator on the aio class).
"""

import json
from collections.abc import AsyncIterator, Iterator
from importlib import resources

from taskcluster import optionsFromEnvironment
from taskcluster.aio.asyncclient import AsyncBaseClient
from taskcluster.aio.asyncclient import createApiClient as create_async_api_client
from taskcluster.client import createApiClient as create_api_client

__all__ = ["CAS", "SERVICES", "AsyncBuildfarm", "AsyncCAS", "AsyncSlaveAPI", "AsyncTasks", "Buildfarm",
           "SlaveAPI", "Tasks", "iterate", "iterate_async", "load_reference", "optionsFromEnvironment"]

CONTINUATION = "continuationToken"
CURSOR = "cursor"  # Swarming's page token (the tasks service)
PAGE_TOKENS = (CONTINUATION, CURSOR)
SERVICES = ("buildfarm", "slaveapi", "tasks", "cas")  # their references ship in common/references/


def load_reference(service: str) -> dict:
    """The shipped API reference of ``service`` (a Taskcluster api.json document)."""
    if service not in SERVICES:
        raise ValueError(f"no shipped reference for {service!r} (known: {', '.join(SERVICES)})")
    text = resources.files("buildfarm.common").joinpath("references", f"{service}.json").read_text("utf-8")
    return json.loads(text)


def paged_calls(reference: dict) -> dict[str, str]:
    """``{function name: its page token}`` of a reference's paged calls (a query parameter
    ``continuationToken`` or ``cursor``)."""
    paged = {}
    for entry in reference["entries"]:
        token = next((t for t in PAGE_TOKENS if t in entry.get("query", ())), None)
        if token is not None:
            paged[entry["name"]] = token
    return paged


def _items(page: dict) -> list:
    """The items of one page: its only list-valued field (``builders``, ``builds``...)."""
    lists = [value for value in page.values() if isinstance(value, list)]
    if len(lists) != 1:
        raise ValueError(f"a page must carry exactly one list, not {sorted(page)}")
    return lists[0]


def iterate(call, *args, query: dict | None = None, token: str = CONTINUATION) -> Iterator:
    """Every item of a paged ``call`` (a bound method of a sync client), following the page
    token (``continuationToken``, or ``cursor``) until a page comes without one."""
    query = dict(query or {})
    while True:
        page = call(*args, query=query)
        yield from _items(page)
        if not page.get(token):
            return
        query[token] = page[token]


async def iterate_async(call, *args, query: dict | None = None, token: str = CONTINUATION) -> AsyncIterator:
    """``iterate`` for a bound method of an aio client."""
    query = dict(query or {})
    while True:
        page = await call(*args, query=query)
        for item in _items(page):
            yield item
        if not page.get(token):
            return
        query[token] = page[token]


def _iterator_name(call: str) -> str:
    return "iter" + call[0].upper() + call[1:]


def _sync_iterator(call: str, token: str):
    def iterator(self, *args, query: dict | None = None) -> Iterator:
        return iterate(getattr(self, call), *args, query=query, token=token)

    iterator.__name__ = _iterator_name(call)
    iterator.__doc__ = f"Every item of ``{call}``, page after page."
    return iterator


def _async_iterator(call: str, token: str):
    def iterator(self, *args, query: dict | None = None) -> AsyncIterator:
        return iterate_async(getattr(self, call), *args, query=query, token=token)

    iterator.__name__ = _iterator_name(call)
    iterator.__doc__ = f"Every item of ``{call}``, page after page (``async for``)."
    return iterator


def make_client_class(name: str, reference: dict, aio: bool = False) -> type:
    """A client class for ``reference`` made by Taskcluster's ``createApiClient`` (the aio one
    when ``aio``), with an ``iter<Call>`` method for each paged call."""
    create = create_async_api_client if aio else create_api_client
    # createApiClient fills in defaults in the document it is given: give it a copy
    cls = create(name, {"reference": json.loads(json.dumps(reference))})
    if aio and not issubclass(cls, AsyncBaseClient):
        # taskcluster 113.2.0's aio createApiClient makes its async methods on the sync
        # BaseClient, whose _makeApiCall answers a dict they cannot await (docs/client.md):
        # the same methods on AsyncBaseClient, as taskcluster's generated aio classes are
        cls = type(cls.__name__, (AsyncBaseClient,), {k: v for k, v in vars(cls).items()
                                                       if k not in ("__dict__", "__weakref__")})
    for call, token in paged_calls(reference).items():
        setattr(cls, _iterator_name(call), (_async_iterator if aio else _sync_iterator)(call, token))
    return cls


Buildfarm = make_client_class("Buildfarm", load_reference("buildfarm"))
AsyncBuildfarm = make_client_class("Buildfarm", load_reference("buildfarm"), aio=True)
SlaveAPI = make_client_class("SlaveAPI", load_reference("slaveapi"))
AsyncSlaveAPI = make_client_class("SlaveAPI", load_reference("slaveapi"), aio=True)
Tasks = make_client_class("Tasks", load_reference("tasks"))
AsyncTasks = make_client_class("Tasks", load_reference("tasks"), aio=True)
CAS = make_client_class("CAS", load_reference("cas"))
AsyncCAS = make_client_class("CAS", load_reference("cas"), aio=True)
