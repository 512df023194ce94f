"""The payloads of buildfarm's exchanges (master/mq/exchanges.py), made from what the
publishing code has at hand: a build as ``db.builds`` returns it, a step, a request, a slave,
a SlaveAPI result, a change.  One function per exchange, so that every publisher of an event
sends the same fields."""

from buildfarm.common.results import result_name
from buildfarm.master.mq.exchanges import (
    ACTION_FINISHED,
    BUILD_FINISHED,
    BUILD_STARTED,
    BUILDFARM_EXCHANGES,
    BUILDSET_COMPLETED,
    CHANGE_ADDED,
    REQUEST_SUBMITTED,
    SLAVE_ATTACHED,
    SLAVE_DETACHED,
    STEP_FINISHED,
    Message,
)
from buildfarm.master.mq.interfaces import IEventBus

ACTION_STATES = {2: "success", 3: "failure"}  # buildfarm.master.fleet.ActionState's final states


def _build(build: dict) -> dict:
    return {"builderName": build["buildername"], "builderId": build["builderid"],
            "buildId": build["buildid"], "number": build["number"],
            "buildRequestId": build["buildrequestid"],
            "buildRequestIds": build.get("buildrequestids") or [build["buildrequestid"]],
            "slaveName": build["slavename"],
            "masterId": build["masterid"], "startedAt": build["started_at"]}


def build_started(bus: IEventBus, build: dict) -> Message:
    """``build``: ``db.builds.get``'s dict (or the same keys), with ``buildrequestids`` (every
    request the build serves, its own first) when it knows them."""
    return bus.message(BUILDFARM_EXCHANGES, BUILD_STARTED, _build(build))


def build_finished(bus: IEventBus, build: dict, results: int, complete_at: float,
                   state_string: str) -> Message:
    payload = {**_build(build), "results": results, "result": result_name(results),
               "completeAt": complete_at, "stateString": state_string}
    return bus.message(BUILDFARM_EXCHANGES, BUILD_FINISHED, payload)


def step_finished(bus: IEventBus, build: dict, stepid: int, number: int, name: str,
                  results: int) -> Message:
    payload = {"builderName": build["buildername"], "buildId": build["buildid"],
               "masterId": build["masterid"],
               "stepId": stepid, "stepNumber": number, "stepName": name, "results": results,
               "result": result_name(results)}
    return bus.message(BUILDFARM_EXCHANGES, STEP_FINISHED, payload)


def request_submitted(bus: IEventBus, builder_name: str, builderid: int, brid: int, bsid: int,
                      scheduler: str, reason: str, priority: int, submitted_at: float) -> Message:
    payload = {"builderName": builder_name, "builderId": builderid, "buildRequestId": brid,
               "buildsetId": bsid, "scheduler": scheduler, "reason": reason, "priority": priority,
               "submittedAt": submitted_at}
    return bus.message(BUILDFARM_EXCHANGES, REQUEST_SUBMITTED, payload)


def slave_attached(bus: IEventBus, name: str, masterid: int, at: float) -> Message:
    return bus.message(BUILDFARM_EXCHANGES, SLAVE_ATTACHED, _slave(name, masterid, at))


def slave_detached(bus: IEventBus, name: str, masterid: int, at: float) -> Message:
    return bus.message(BUILDFARM_EXCHANGES, SLAVE_DETACHED, _slave(name, masterid, at))


def _slave(name: str, masterid: int, at: float) -> dict:
    return {"slaveName": name, "masterId": masterid, "at": at}


def action_finished(bus: IEventBus, action: str, slave: str, requestid: int, state: int, text: str,
                    finished_at: float, masterid: int) -> Message:
    payload = {"action": action, "slaveName": slave, "actionId": requestid,
               "state": ACTION_STATES.get(int(state), "failure"), "text": text or "",
               "finishedAt": finished_at, "masterId": masterid}
    return bus.message(BUILDFARM_EXCHANGES, ACTION_FINISHED, payload)


def change_added(bus: IEventBus, change: dict) -> Message:
    """``change``: ``db.changes.get``'s dict."""
    payload = {"changeId": change["changeid"], "when": change.get("when_timestamp") or 0.0,
               **{key: change.get(key) for key in ("project", "codebase", "branch", "revision",
                                                   "repository", "author", "category")}}
    return bus.message(BUILDFARM_EXCHANGES, CHANGE_ADDED, payload)


def publish(bus: IEventBus, message: Message):
    """Publish one message made here (its own outbox transaction when the bus is outboxed)."""
    return bus.publish(message.exchange, message.routing_key, message.payload)


def in_transaction(bus: IEventBus, *messages: Message) -> tuple[Message, ...]:
    """What a caller writes to the outbox in its own transaction: the messages when the bus is
    outboxed, nothing otherwise; it hands them to ``bus.published`` after the commit either way."""
    return messages if bus.outboxed else ()


def buildset_completed(bus: IEventBus, bsid: int, scheduler: str, results: int, complete_at: float,
                       masterid: int) -> Message:
    """Made inside the transaction that completes the buildset (``db.buildsets.complete_if_done``)."""
    payload = {"buildsetId": bsid, "scheduler": scheduler, "results": results,
               "result": result_name(results), "completeAt": complete_at, "masterId": masterid}
    return bus.message(BUILDFARM_EXCHANGES, BUILDSET_COMPLETED, payload)

