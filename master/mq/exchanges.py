"""buildfarm's exchanges, declared once: the publishers make their messages from these
declarations and ``/references/buildfarm/v1/exchanges.json`` is made from them (as an
``APIEntry`` declares a route for both its handler and the API reference).

Routing keys follow Taskcluster's style: ``primary.<field>.<field>...<reserved>``, one word per
field in the declared order, ``_`` for a field without a value, and ``reserved`` (always ``_``
today) left for later fields, so a binding pattern should end in ``#``.  A word never holds a
dot: ``%`` and ``.`` in a value are written ``%25`` and ``%2E``; a word is cut to
``MAX_WORD_LENGTH`` characters so the key stays within AMQP's 255 bytes.
"""

import uuid
from dataclasses import dataclass, field

API_VERSION = "v1"
JSON_SCHEMA_DRAFT = "http://json-schema.org/draft-06/schema#"
EXCHANGES_REFERENCE_SCHEMA = "/schemas/common/exchanges-reference-v0.json#"
DEFAULT_EXCHANGE_PREFIX = "exchange/"  # c['mq']['exchange_prefix'], Taskcluster's (pulse) namespace
EMPTY_WORD = "_"
MAX_WORD_LENGTH = 32
SCHEMA_VERSION = 1  # the ``version`` every message carries


@dataclass(frozen=True)
class Message:
    """One event: its exchange's full name, its routing key and its JSON payload (with its
    ``eventId``); ``origin`` is the id of the master whose event it is (None before the master
    knows its id), carried to the broker in the message's headers, not in the payload."""

    exchange: str
    routing_key: str
    payload: dict
    origin: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class RoutingKeyField:
    """One word of a routing key, named as in the payload (Taskcluster's routingKey entry)."""

    name: str
    summary: str
    required: bool = True
    multiple_words: bool = False
    constant: str | None = None

    def reference(self) -> dict:
        entry = {"name": self.name, "summary": self.summary, "multipleWords": self.multiple_words,
                 "required": self.required}
        if self.constant is not None:
            entry["constant"] = self.constant
        return entry


PRIMARY = RoutingKeyField("routingKeyKind", "Identifier for the routing-key kind: always `primary` "
                          "for the formalized routing key.", constant="primary")
RESERVED = RoutingKeyField("reserved", "Space reserved for future routing-key entries: always match "
                           "it with `#`.", required=False, multiple_words=True)


def routing_word(value) -> str:
    """One routing-key word for a field's value (``_`` for None or empty)."""
    if value is None or value == "":
        return EMPTY_WORD
    text = str(value).replace("%", "%25").replace(".", "%2E")
    return text[:MAX_WORD_LENGTH]


@dataclass(frozen=True)
class Exchange:
    """A topic exchange of one service: its name under the service's prefix, its documentation,
    the routing-key fields between ``primary`` and ``reserved`` (each a payload property),
    and the JSON schema properties of its payload (``eventId`` and ``version`` added)."""

    name: str
    title: str
    description: str
    fields: tuple[RoutingKeyField, ...]
    properties: dict
    required: tuple[str, ...] = ()

    @property
    def schema_name(self) -> str:
        return f"{self.name}-message"

    @property
    def routing_key_fields(self) -> tuple[RoutingKeyField, ...]:
        return (PRIMARY, *self.fields, RESERVED)

    def routing_key(self, payload: dict) -> str:
        """``primary.<field>...._`` for ``payload``."""
        words = [PRIMARY.constant, *(routing_word(payload.get(f.name)) for f in self.fields), EMPTY_WORD]
        return ".".join(words)

    def schema(self) -> dict:
        """The JSON schema of this exchange's messages (draft 06)."""
        properties = {
            "eventId": {"type": "string", "format": "uuid",
                        "description": "Unique per event: a consumer that sees it twice drops the copy."},
            "version": {"const": SCHEMA_VERSION, "description": "Message version."},
            **self.properties,
        }
        required = ["eventId", "version", *(f.name for f in self.fields if f.required), *self.required]
        return {"title": self.title, "description": self.description, "type": "object",
                "properties": properties, "additionalProperties": False,
                "required": list(dict.fromkeys(required))}


@dataclass(frozen=True)
class ExchangeSet:
    """The exchanges of one service, as its exchange reference lists them."""

    service: str
    title: str
    description: str
    exchanges: tuple[Exchange, ...] = field(default_factory=tuple)

    @property
    def reference_path(self) -> str:
        return f"/references/{self.service}/{API_VERSION}/exchanges.json"

    def prefix(self, exchange_prefix: str = DEFAULT_EXCHANGE_PREFIX) -> str:
        """The common prefix of this service's exchange names, e.g. ``exchange/buildfarm/v1/``."""
        return f"{exchange_prefix}{self.service}/{API_VERSION}/"

    def full_name(self, exchange: Exchange, exchange_prefix: str = DEFAULT_EXCHANGE_PREFIX) -> str:
        return self.prefix(exchange_prefix) + exchange.name

    def message(self, exchange: Exchange, payload: dict,
                exchange_prefix: str = DEFAULT_EXCHANGE_PREFIX) -> Message:
        """The message of ``exchange`` for ``payload`` (a new ``eventId`` unless it has one)."""
        if exchange not in self.exchanges:
            raise ValueError(f"{exchange.name!r} is not an exchange of {self.service}")
        body = {"eventId": str(uuid.uuid4()), "version": SCHEMA_VERSION, **payload}
        return Message(self.full_name(exchange, exchange_prefix), exchange.routing_key(body), body)

    def reference(self, exchange_prefix: str = DEFAULT_EXCHANGE_PREFIX) -> dict:
        """The exchange reference (Taskcluster's ``exchanges-reference-v0``)."""
        return {
            "$schema": EXCHANGES_REFERENCE_SCHEMA,
            "apiVersion": API_VERSION,
            "serviceName": self.service,
            "title": self.title,
            "description": self.description,
            "exchangePrefix": self.prefix(exchange_prefix),
            "entries": [{
                "type": "topic-exchange",
                "exchange": e.name,
                "name": _camel(e.name),
                "title": e.title,
                "description": e.description,
                "routingKey": [f.reference() for f in e.routing_key_fields],
                "schema": f"{API_VERSION}/{e.schema_name}.json#",
            } for e in self.exchanges],
        }

    def schema_document(self, name: str) -> dict | None:
        """The served schema ``/schemas/<service>/v1/<name>.json`` of one exchange's messages."""
        found = next((e for e in self.exchanges if e.schema_name == name), None)
        if found is None:
            return None
        return {"$schema": JSON_SCHEMA_DRAFT,
                "$id": f"/schemas/{self.service}/{API_VERSION}/{name}.json#", **found.schema()}


def _camel(name: str) -> str:
    """``build-finished`` -> ``buildFinished`` (the client libraries' function name)."""
    first, *rest = name.split("-")
    return first + "".join(word.capitalize() for word in rest)


# -- buildfarm's exchanges -----------------------------------------------------------------

def _string(description: str, nullable: bool = False) -> dict:
    return {"type": ["string", "null"] if nullable else "string", "description": description}


def _integer(description: str, nullable: bool = False) -> dict:
    return {"type": ["integer", "null"] if nullable else "integer", "description": description}


def _number(description: str, nullable: bool = False) -> dict:
    return {"type": ["number", "null"] if nullable else "number", "description": description}


RESULT_NAMES = ("success", "warnings", "failure", "skipped", "exception", "retry", "cancelled")
_BUILDER = RoutingKeyField("builderName", "The builder's name.")
_BUILD = RoutingKeyField("buildId", "The build's id.")
_REQUEST = RoutingKeyField("buildRequestId", "The build request's id.")
_SLAVE = RoutingKeyField("slaveName", "The slave's name.")
_RESULT = RoutingKeyField("result", "The result's name (`success`, `failure`, ...).")
_MASTER = RoutingKeyField("masterId", "The id of the master that published the event.")

_BUILD_PROPERTIES = {
    "builderName": _string("The builder's name."),
    "builderId": _integer("The builder's id."),
    "buildId": _integer("The build's id (`/api/v1/builds/<buildId>`)."),
    "number": _integer("The build's number in its builder."),
    "buildRequestId": _integer("The request this build runs (the first, when requests were "
                               "collapsed into it)."),
    "buildRequestIds": {"type": "array", "items": {"type": "integer"},
                        "description": "Every request this build runs: `buildRequestId` first, "
                                       "then the requests collapsed into it "
                                       "(`c['collapseRequests']`), which it serves too."},
    "slaveName": _string("The slave that runs it."),
    "masterId": _integer("The master that runs it."),
    "startedAt": _number("When it started (seconds since the epoch)."),
}
BUILD_STARTED = Exchange(
    "build-started", "Build Started",
    "A build started on a slave (its row is in the database).",
    (_BUILDER, _BUILD, _REQUEST, _SLAVE, _MASTER), _BUILD_PROPERTIES,
    required=("builderId", "number", "startedAt", "buildRequestIds"))
BUILD_FINISHED = Exchange(
    "build-finished", "Build Finished",
    "A build finished with a result; written to the outbox in the transaction that records "
    "the result.  `retry` means its request runs again.",
    (_BUILDER, _BUILD, _REQUEST, _SLAVE, _RESULT, _MASTER),
    {**_BUILD_PROPERTIES,
     "results": _integer("The result's number (Buildbot's: 0 success ... 6 cancelled)."),
     "result": {"enum": list(RESULT_NAMES), "description": "The result's name."},
     "completeAt": _number("When it finished."),
     "stateString": _string("The build's last state text.")},
    required=("builderId", "number", "startedAt", "buildRequestIds", "results", "completeAt",
              "stateString"))
STEP_FINISHED = Exchange(
    "step-finished", "Step Finished", "A step of a build finished (or was skipped).",
    (_BUILDER, _BUILD, RoutingKeyField("stepId", "The step's id."), _RESULT, _MASTER),
    {"builderName": _BUILD_PROPERTIES["builderName"], "buildId": _BUILD_PROPERTIES["buildId"],
     "masterId": _BUILD_PROPERTIES["masterId"],
     "stepId": _integer("The step's id."), "stepNumber": _integer("Its place in the build, from 0."),
     "stepName": _string("The step's name."),
     "results": _integer("The result's number."),
     "result": {"enum": list(RESULT_NAMES), "description": "The result's name."}},
    required=("stepNumber", "stepName", "results"))
REQUEST_SUBMITTED = Exchange(
    "request-submitted", "Build Request Submitted",
    "A build request was submitted (by a scheduler, a force or a trigger); written to the outbox "
    "in the transaction that adds it.",
    (_BUILDER, _REQUEST, RoutingKeyField("buildsetId", "The buildset's id."),
     RoutingKeyField("scheduler", "The scheduler that submitted it.")),
    {"builderName": _string("The builder that is to run it."), "builderId": _integer("The builder's id."),
     "buildRequestId": _integer("The request's id (`/api/v1/buildrequests/<buildRequestId>`)."),
     "buildsetId": _integer("Its buildset."), "scheduler": _string("The scheduler's name."),
     "reason": _string("Why it was submitted."), "priority": _integer("Its priority."),
     "submittedAt": _number("When it was submitted.")},
    required=("builderId", "reason", "priority", "submittedAt"))
_SLAVE_PROPERTIES = {"slaveName": _string("The slave's name."),
                     "masterId": _integer("The master it attached to or detached from."),
                     "at": _number("When (seconds since the epoch).")}
SLAVE_ATTACHED = Exchange(
    "slave-attached", "Slave Attached", "A slave attached to a master (PB).",
    (_SLAVE, _MASTER), _SLAVE_PROPERTIES, required=("at",))
SLAVE_DETACHED = Exchange(
    "slave-detached", "Slave Detached", "A slave's connection to a master is gone.",
    (_SLAVE, _MASTER), _SLAVE_PROPERTIES, required=("at",))
ACTION_FINISHED = Exchange(
    "action-finished", "SlaveAPI Action Finished",
    "A SlaveAPI action (reboot, shutdown, disable, ...) ended in success or failure.",
    (RoutingKeyField("action", "The action's name."), _SLAVE,
     RoutingKeyField("actionId", "The action's request id (`/slaveapi/slaves/<slave>/requests/<id>`)."),
     RoutingKeyField("state", "`success` or `failure`."), _MASTER),
    {"action": _string("The action's name."), "slaveName": _string("The slave it acted on."),
     "actionId": _integer("Its request id."), "state": {"enum": ["success", "failure"],
                                                         "description": "How it ended."},
     "text": _string("What it said."), "finishedAt": _number("When it ended."),
     "masterId": _integer("The master that ran it.")},
    required=("text", "finishedAt"))
CHANGE_ADDED = Exchange(
    "change-added", "Change Added", "A change (from a poller, a hook or `sendchange`) was stored.",
    (RoutingKeyField("changeId", "The change's id."),
     RoutingKeyField("project", "Its project (`_` for none).", required=False),
     RoutingKeyField("codebase", "Its codebase (`_` for none).", required=False),
     RoutingKeyField("branch", "Its branch (`_` for none; dots written `%2E`).", required=False)),
    {"changeId": _integer("The change's id (`/api/v1/changes/<changeId>`)."),
     "project": _string("Its project.", nullable=True), "codebase": _string("Its codebase.", nullable=True),
     "branch": _string("Its branch.", nullable=True), "revision": _string("Its revision.", nullable=True),
     "repository": _string("Its repository.", nullable=True), "author": _string("Its author.", nullable=True),
     "category": _string("Its category.", nullable=True), "when": _number("When it was made.")},
    required=("when",))

BUILDSET_COMPLETED = Exchange(
    "buildset-completed", "Buildset Completed",
    "Every build request of a buildset is complete, and so is the buildset (with the worst of "
    "their results); written to the outbox in the transaction that completes it, by the master "
    "that completed it, once.",
    (RoutingKeyField("buildsetId", "The buildset's id."),
     RoutingKeyField("scheduler", "The scheduler that submitted it."),
     RoutingKeyField("result", "The result's name."), _MASTER),
    {"buildsetId": _integer("The buildset's id (`/api/v1/buildsets/<buildsetId>`)."),
     "scheduler": _string("The scheduler that submitted it."),
     "results": _integer("The result's number."),
     "result": {"enum": list(RESULT_NAMES), "description": "The result's name."},
     "completeAt": _number("When it completed."),
     "masterId": _integer("The master that completed it.")},
    required=("results", "completeAt"))

BUILDFARM_EXCHANGES = ExchangeSet(
    "buildfarm", "buildfarm events",
    "The events of a buildfarm master: builds, steps, build requests, slaves, SlaveAPI actions "
    "and changes.  Each message carries an `eventId`; delivery is at least once, so a consumer "
    "drops an `eventId` it has seen (docs/operations.md).",
    (BUILD_STARTED, BUILD_FINISHED, STEP_FINISHED, REQUEST_SUBMITTED, SLAVE_ATTACHED, SLAVE_DETACHED,
     ACTION_FINISHED, CHANGE_ADDED, BUILDSET_COMPLETED),
)
