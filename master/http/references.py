"""Taskcluster-format API references made from the route tables (docs/taskcluster.md).

A service (``APIService``) has a name, a title, a description and a ``SchemaRegistry`` of the
JSON schemas of its inputs and outputs.  Its routes declare themselves in a ``RouteTable``
with ``api=APIEntry(...)`` (master/http/routes.py); ``reference`` walks the tables and makes
the document that ``taskcluster.createApiClient`` reads, as served at
``/references/<service>/v1/api.json``: one entry per declared route, its path relative to
``/api/<service>/v1``, its arguments, query parameters, scope expression and schemas (URLs
relative to ``/schemas/<service>/``).  A service's exchanges (an ``ExchangeSet`` of
master/mq/exchanges.py) make its exchange reference, ``/references/<service>/v1/exchanges.json``.
``manifest`` lists the references of every service (``/references/manifest.json``).
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from buildfarm.master.http.routes import PUBLIC, READ_METHODS, RouteTable, api_prefix
from buildfarm.master.mq.exchanges import DEFAULT_EXCHANGE_PREFIX, ExchangeSet

API_REFERENCE_SCHEMA = "/schemas/common/api-reference-v0.json#"
JSON_SCHEMA_DRAFT = "http://json-schema.org/draft-06/schema#"
API_VERSION = "v1"
# klein's ``<converter:name>`` and ``<name>``; the scope templates' ``{name}``
_KLEIN_ARG = re.compile(r"<(?:[a-z]+:)?([A-Za-z_][A-Za-z0-9_]*)>")
_SCOPE_ARG = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class SchemaRegistry:
    """The JSON schemas of one service, by name; each is served at
    ``/schemas/<service>/v1/<name>.json`` and named ``v1/<name>.json#`` in the reference."""

    service: str
    schemas: dict[str, dict] = field(default_factory=dict)

    def add(self, name: str, schema: dict) -> str:
        """Register ``schema`` as ``name``; the name, for an ``APIEntry``."""
        if name in self.schemas:
            raise ValueError(f"schema {name!r} of {self.service} is registered twice")
        self.schemas[name] = schema
        return name

    def document(self, name: str) -> dict | None:
        """The served schema: ``$schema`` and ``$id`` added (None for an unknown name)."""
        schema = self.schemas.get(name)
        if schema is None:
            return None
        return {"$schema": JSON_SCHEMA_DRAFT, "$id": f"/schemas/{self.service}/{relative_url(name)}",
                **schema}


@dataclass
class APIService:
    """A Taskcluster-style service: where its routes live and what its reference says."""

    name: str
    title: str
    description: str
    schemas: SchemaRegistry

    @property
    def prefix(self) -> str:
        return api_prefix(self.name, API_VERSION)

    @property
    def reference_path(self) -> str:
        return f"/references/{self.name}/{API_VERSION}/api.json"


def relative_url(schema_name: str) -> str:
    """A schema's URL relative to ``/schemas/<service>/`` (Taskcluster's ``v1/<name>.json#``)."""
    return f"{API_VERSION}/{schema_name}.json#"


def reference_route(path: str, prefix: str) -> tuple[str, list[str]]:
    """A klein path under ``prefix`` as a reference's ``route`` and ``args``:
    ``/api/buildfarm/v1/builds/<int:buildid>`` -> ``/builds/<buildid>``, ``["buildid"]``."""
    route = _KLEIN_ARG.sub(r"<\1>", path.removeprefix(prefix))
    return route or "/", _KLEIN_ARG.findall(path)


def scope_expression(template: str) -> str:
    """A route's scope template in Taskcluster's notation: ``{name}`` -> ``<name>``."""
    return _SCOPE_ARG.sub(r"<\1>", template)


def reference(service: APIService, tables: Iterable[RouteTable]) -> dict:
    """The API reference of ``service``: an entry for every route of ``tables`` declared with
    an ``APIEntry`` of this service, in declaration order."""
    entries = []
    for table in tables:
        for declared in table.routes:
            api = declared.api
            if api is None or api.service != service.name:
                continue
            entries.append(_entry(service, declared, api))
    names = [e["name"] for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{service.name}: function names declared twice: {duplicates}")
    return {
        "$schema": API_REFERENCE_SCHEMA,
        "apiVersion": API_VERSION,
        "serviceName": service.name,
        "title": service.title,
        "description": service.description,
        "entries": entries,
    }


def _entry(service: APIService, declared, api) -> dict:
    route, args = reference_route(declared.api_path, service.prefix)
    entry = {
        "type": "function",
        "method": declared.method.lower(),
        "route": route,
        "args": args,
        "name": api.name,
        "stability": api.stability,
        "title": api.title,
        "description": api.description,
        "category": api.category,
    }
    if api.query:
        entry["query"] = list(api.query)
    if declared.scope != PUBLIC:
        entry["scopes"] = scope_expression(declared.scope)
    for kind in ("input", "output"):
        name = getattr(api, kind)
        if name is None:
            continue
        if name not in service.schemas.schemas:
            raise ValueError(f"{service.name}.{api.name}: no schema named {name!r}")
        entry[kind] = relative_url(name)
    if declared.method in READ_METHODS and api.input is not None:
        raise ValueError(f"{service.name}.{api.name}: a {declared.method} takes no input")
    return entry


def manifest(root_url: str, services: Iterable[APIService], exchanges: Iterable[ExchangeSet] = ()) -> dict:
    """``/references/manifest.json``: the URL of every service's API reference, then of every
    exchange reference."""
    root = root_url.rstrip("/")
    paths = [s.reference_path for s in services] + [e.reference_path for e in exchanges]
    return {"references": [root + path for path in paths]}


class UnknownService(KeyError):
    """No service of the catalog has that name."""


@dataclass(frozen=True)
class APICatalog:
    """The services a master serves in Taskcluster's layout and the route tables that declare
    their routes (master/apicatalog.py makes the master's)."""

    services: tuple[APIService, ...]
    tables: tuple[RouteTable, ...]
    exchanges: tuple[ExchangeSet, ...] = ()

    def service(self, name: str) -> APIService:
        found = next((s for s in self.services if s.name == name), None)
        if found is None:
            raise UnknownService(name)
        return found

    def reference(self, name: str) -> dict:
        """The reference of the service ``name`` (``UnknownService`` when there is none)."""
        return reference(self.service(name), self.tables)

    def manifest(self, root_url: str) -> dict:
        return manifest(root_url, self.services, self.exchanges)

    def exchange_set(self, name: str) -> ExchangeSet:
        """The exchanges of the service ``name`` (``UnknownService`` when it has none)."""
        found = next((e for e in self.exchanges if e.service == name), None)
        if found is None:
            raise UnknownService(name)
        return found

    def exchanges_reference(self, name: str, exchange_prefix: str = DEFAULT_EXCHANGE_PREFIX) -> dict:
        """The exchange reference of the service ``name``, its exchanges named under
        ``exchange_prefix`` (``c['mq']['exchange_prefix']``)."""
        return self.exchange_set(name).reference(exchange_prefix)

    def schema_document(self, service: str, name: str) -> dict | None:
        """The served schema ``/schemas/<service>/v1/<name>.json``: of an API entry or of an
        exchange's messages (None when there is none; ``UnknownService`` for no such service)."""
        api_services = {s.name for s in self.services}
        exchange_services = {e.service for e in self.exchanges}
        if service not in api_services | exchange_services:
            raise UnknownService(service)
        document = self.service(service).schemas.document(name) if service in api_services else None
        if document is None and service in exchange_services:
            document = self.exchange_set(service).schema_document(name)
        return document
