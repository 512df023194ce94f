"""HTTP workers on the Queue (master/queue/workerapi.py, claims.py, claimcreds.py, waiters.py) on a
real master in memory, through its web site, on SQLite and PostgreSQL: which queues HTTP workers
serve, claimWork's long poll (woken in-process, answering no task after 20 s on the master's
clock), claims atomic and ordered, each claim's temporary credentials (signed with Hawk by the
worker for its own run only), reclaimTask, the reports with Taskcluster's retry rules and 409s,
claim-expired, and c['queue']['claim_timeout_secs']."""

import json

import jsonschema
import mohawk
import pytest_twisted
import sqlalchemy as sa
import taskcluster
from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from buildfarm.master.auth.interfaces import iso
from buildfarm.master.db.engine import create_engine
from buildfarm.master.db.migrate import upgrade_database
from buildfarm.master.queue import apireference as ref
from buildfarm.master.queue.claimcreds import ISSUER_ID
from buildfarm.master.queue.model import check_definition
from buildfarm.master.queue.service import CLAIM_EXPIRY_INTERVAL_S
from buildfarm.master.queue.settings import validate_queue_config
from buildfarm.master.queue.store import QueueStore
from buildfarm.master.queue.workerapi import CLAIM_WORK_TIMEOUT_S, RECHECK_S
from fixtures.memoryhttp import MemoryRequest, basic, render, render_request
from fixtures.memorymaster import MASTER_CFG, eventually, on_database, start_memory_master

NOW = 1_800_000_000.0
QUEUE = "/api/queue/v1"
HOST = "localhost:8010"
PB_QUEUE = "proj-ci/linux"
HTTP_QUEUE = "proj-http/docker"
WORKER = {"workerGroup": "grp", "workerId": "w1"}
TIMEOUT = 600



ADMIN = basic("admin", "adm1n")
RUNNER = basic("runner", "run")  # may claim work of proj-http/* as grp/*, nothing else
CFG = MASTER_CFG + f"""\
c['users'] += [util.User('runner', password='run',
                         scopes=['queue:claim-work:proj-http/*', 'queue:worker-id:grp/*'])]
c['queue'] = {{'task_queues': {{'{PB_QUEUE}': {{'pool': 'ci'}}}}, 'claim_timeout_secs': {TIMEOUT}}}
"""


@pytest_twisted.async_yield_fixture
async def queue(tmp_path, db_url):
    master = await start_memory_master(tmp_path, on_database(db_url, CFG), now=NOW)
    resource = master.www.make_site().resource

    def call(method: str, path: str, body: dict | None = None, headers=ADMIN) -> defer.Deferred:
        async def rendered():
            response = await render(resource, method, QUEUE + path,
                                    body=b"" if body is None else json.dumps(body).encode(),
                                    headers={**headers, "content-type": "application/json"})
            return response.code, json.loads(response.body)
        return defer.ensureDeferred(rendered())

    async def signed(credentials: dict, method: str, path: str, body: dict | None = None):
        """A call signed with Hawk as the official client signs it (its ext carries the certificate)."""
        data = b"" if body is None else json.dumps(body).encode()
        ext = taskcluster.Queue({"rootUrl": f"http://{HOST}", "credentials": credentials}).makeHawkExt()
        sender = mohawk.Sender({"id": credentials["clientId"], "key": credentials["accessToken"],
                                "algorithm": "sha256"}, f"http://{HOST}{QUEUE}{path}", method, content=data,
                               content_type="application/json", ext=ext,
                               _timestamp=int(master.reactor.seconds()))
        request = MemoryRequest(method, QUEUE + path)
        for name, value in (("host", HOST), ("authorization", sender.request_header),
                            ("content-type", "application/json")):
            request.requestHeaders.setRawHeaders(name.encode(), [value.encode()])
        request.gotLength(len(data))
        request.content.write(data)
        request.content.seek(0)
        response = await render_request(resource, request)
        return response.code, json.loads(response.body)

    call.master, call.signed, call.resource = master, signed, resource
    yield call
    if master.running:
        await master.stopService()


def definition(**changes) -> dict:
    body = {"taskQueueId": HTTP_QUEUE, "created": iso(NOW), "deadline": iso(NOW + 3600),
            "payload": {"image": "alpine"}, "scopes": ["secrets:get:db"],
            "metadata": {"name": "t", "description": "d", "owner": "me@example.com", "source": "https://x/"}}
    body.update(changes)
    return body


async def create(queue, **changes) -> str:
    task_id = taskcluster.slugId()
    code, answer = await queue("PUT", f"/task/{task_id}", definition(**changes))
    assert code == 200, answer
    return task_id


def valid(schema: str, answer: dict) -> dict:
    """``answer``, checked against the queue reference's schema ``schema``."""
    jsonschema.Draft6Validator(ref.schemas.document(schema)).validate(answer)
    return answer


async def claim_one(queue, worker=WORKER, headers=ADMIN) -> dict:
    code, answer = await queue("POST", f"/claim-work/{HTTP_QUEUE}", {**worker, "tasks": 1}, headers)
    assert code == 200, answer
    valid("claim-work-response", answer)
    (claim,) = answer["tasks"]
    return claim


async def waiting(queue, count: int = 1) -> None:
    await eventually(lambda: defer.succeed(queue.master.queue.waiters.waiting(HTTP_QUEUE) == count),
                     f"{count} claimWork waiting")


# -- which queue is served by whom -------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_claim_work_on_a_queue_pb_slaves_serve_is_a_400_that_says_so(queue):
    code, refused = await queue("POST", f"/claim-work/{PB_QUEUE}", {**WORKER, "tasks": 1})
    assert code == 400 and "PB slaves" in refused["message"]


@pytest_twisted.ensureDeferred
async def test_claim_work_needs_both_scopes_and_a_well_formed_body(queue):
    stranger = {"workerGroup": "other", "workerId": "w1", "tasks": 1}
    code, refused = await queue("POST", f"/claim-work/{HTTP_QUEUE}", stranger, RUNNER)
    assert code == 403 and "queue:worker-id:other/w1" in json.dumps(refused)
    code, refused = await queue("POST", "/claim-work/elsewhere/docker", {**WORKER, "tasks": 1}, RUNNER)
    assert code == 403 and "queue:claim-work:elsewhere/docker" in json.dumps(refused)
    code, refused = await queue("POST", f"/claim-work/{HTTP_QUEUE}", {"workerGroup": "grp", "tasks": 99})
    assert code == 400 and "workerId" in refused["message"] and "tasks must be" in refused["message"]


# -- claimWork ---------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_a_claim_runs_the_task_on_the_worker_until_taken_until(queue):
    task_id = await create(queue)
    claim = await claim_one(queue, headers=RUNNER)
    assert (claim["runId"], claim["workerGroup"], claim["workerId"]) == (0, "grp", "w1")
    assert claim["takenUntil"] == iso(NOW + TIMEOUT) and claim["task"]["taskQueueId"] == HTTP_QUEUE
    run = claim["status"]["runs"][0]
    assert (claim["status"]["taskId"], claim["status"]["state"]) == (task_id, "running")
    assert run["state"] == "running"
    assert (run["workerId"], run["takenUntil"], run["started"]) == ("w1", iso(NOW + TIMEOUT), iso(NOW))
    credentials = claim["credentials"]
    assert credentials["clientId"] == f"task-client/{task_id}/0/on/grp/w1/until/{int(NOW + TIMEOUT)}"
    certificate = json.loads(credentials["certificate"])
    assert certificate["issuer"] == ISSUER_ID
    assert sorted(certificate["scopes"]) == sorted([
        f"queue:reclaim-task:{task_id}/0", f"queue:resolve-task:{task_id}/0",
        f"queue:create-artifact:{task_id}/0", "secrets:get:db"])
    assert certificate["expiry"] >= (NOW + TIMEOUT) * 1000


@pytest_twisted.ensureDeferred
async def test_claims_take_the_highest_priority_first_then_the_oldest(queue):
    old_low = await create(queue, priority="low")
    queue.master.reactor.advance(1)
    high = await create(queue, priority="high", created=iso(NOW + 1))
    queue.master.reactor.advance(1)
    new_low = await create(queue, priority="low", created=iso(NOW + 2))
    order = [(await claim_one(queue))["status"]["taskId"] for _ in range(3)]
    assert order == [high, old_low, new_low]


@pytest_twisted.ensureDeferred
async def test_claim_work_waits_and_answers_as_soon_as_a_task_is_created(queue):
    polling = queue("POST", f"/claim-work/{HTTP_QUEUE}", {**WORKER, "tasks": 2})
    await waiting(queue)
    assert not polling.called
    task_id = await create(queue)  # wakes the waiter in-process: no clock advance needed
    code, answer = await polling
    assert code == 200 and [c["status"]["taskId"] for c in answer["tasks"]] == [task_id]


@pytest_twisted.ensureDeferred
async def test_claim_work_answers_no_task_after_20_seconds(queue):
    polling = queue("POST", f"/claim-work/{HTTP_QUEUE}", {**WORKER, "tasks": 1})
    waited = 0.0
    waiters = queue.master.queue.waiters
    while not polling.called:
        await eventually(lambda: defer.succeed(polling.called or waiters.waiting(HTTP_QUEUE)),
                         "claimWork to wait or answer")
        if polling.called:
            break
        queue.master.reactor.advance(RECHECK_S)
        waited += RECHECK_S
    assert await polling == (200, {"tasks": []})
    assert waited == CLAIM_WORK_TIMEOUT_S


@pytest_twisted.ensureDeferred
async def test_a_caller_that_hangs_up_stops_waiting_and_claims_nothing(queue):
    data = json.dumps({**WORKER, "tasks": 1}).encode()
    request = MemoryRequest("POST", f"{QUEUE}/claim-work/{HTTP_QUEUE}")
    for name, value in {**ADMIN, "content-type": "application/json"}.items():
        request.requestHeaders.setRawHeaders(name.encode(), [value.encode()])
    request.gotLength(len(data))
    request.content.write(data)
    request.content.seek(0)
    queue.resource.render(request)
    await waiting(queue)
    request.connectionLost(Failure(ConnectionDone("the worker hung up")))
    await waiting(queue, 0)  # at once, not at the next recheck
    task_id = await create(queue)
    assert (await queue.master.queue.store.get(task_id)).state == "pending"


@pytest_twisted.ensureDeferred
async def test_a_waiting_claim_work_rechecks_for_tasks_other_masters_made_pending(queue):
    polling = queue("POST", f"/claim-work/{HTTP_QUEUE}", {**WORKER, "tasks": 1})
    await waiting(queue)
    task_id = taskcluster.slugId()  # stored behind the Queue's back, as another master would
    other_store = QueueStore(queue.master.db)  # without the waiters of this master
    await other_store.create(check_definition(task_id, definition(), NOW), NOW)
    assert not polling.called
    queue.master.reactor.advance(RECHECK_S)
    code, answer = await polling
    assert [c["status"]["taskId"] for c in answer["tasks"]] == [task_id]


@pytest_twisted.ensureDeferred
async def test_two_claimers_racing_for_one_task_get_it_once(queue):
    await create(queue)
    claims = queue.master.queue.claims
    found = await defer.gatherResults([defer.ensureDeferred(
        claims.claim_work(HTTP_QUEUE, "grp", f"w{i}", 1, NOW, TIMEOUT)) for i in range(6)])
    assert sum(len(claimed) for claimed in found) == 1


# -- credentials, reclaim, reports -------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_the_claims_credentials_reclaim_and_report_their_run_and_nothing_else(queue):
    created = {await create(queue), await create(queue)}
    claim = await claim_one(queue)
    own = claim["status"]["taskId"]
    (other,) = created - {own}
    queue.master.reactor.advance(100)
    code, reclaimed = await queue.signed(claim["credentials"], "POST", f"/task/{own}/runs/0/reclaim")
    assert code == 200, valid("task-reclaim-response", reclaimed)
    assert reclaimed["takenUntil"] == iso(NOW + 100 + TIMEOUT) and "task" not in reclaimed
    assert reclaimed["credentials"]["clientId"].endswith(f"/until/{int(NOW + 100 + TIMEOUT)}")
    code, refused = await queue.signed(reclaimed["credentials"], "POST", f"/task/{other}/runs/0/completed")
    assert code == 403 and f"queue:resolve-task:{other}/0" in json.dumps(refused)
    code, done = await queue.signed(reclaimed["credentials"], "POST", f"/task/{own}/runs/0/completed")
    assert code == 200 and valid("task-status-response", done) and done["status"]["state"] == "completed"
    assert done["status"]["runs"][0]["reasonResolved"] == "completed"


@pytest_twisted.ensureDeferred
async def test_reporting_completed_schedules_the_dependents_and_is_idempotent(queue):
    first = await create(queue)
    dependent = await create(queue, dependencies=[first])
    await claim_one(queue)
    code, done = await queue("POST", f"/task/{first}/runs/0/completed")
    assert code == 200
    assert (await queue("GET", f"/task/{dependent}/status"))[1]["status"]["state"] == "pending"
    assert await queue("POST", f"/task/{first}/runs/0/completed") == (200, done)
    code, refused = await queue("POST", f"/task/{first}/runs/0/failed")
    assert code == 409 and refused["code"] == "RequestConflict"
    code, refused = await queue("POST", f"/task/{first}/runs/3/completed")
    assert code == 404


@pytest_twisted.ensureDeferred
async def test_report_failed_resolves_failed_and_a_report_of_a_pending_run_is_a_409(queue):
    task_id = await create(queue)
    code, refused = await queue("POST", f"/task/{task_id}/runs/0/completed")
    assert code == 409 and "not running" in refused["message"]
    await claim_one(queue)
    code, failed = await queue("POST", f"/task/{task_id}/runs/0/failed")
    assert code == 200 and failed["status"]["state"] == "failed"


@pytest_twisted.ensureDeferred
async def test_worker_shutdown_and_intermittent_task_retry_while_retries_are_left(queue):
    task_id = await create(queue, retries=2)
    reasons = ["worker-shutdown", "intermittent-task", "worker-shutdown"]
    for run_id, reason in enumerate(reasons):
        claim = await claim_one(queue)
        assert claim["runId"] == run_id
        code, answer = await queue("POST", f"/task/{task_id}/runs/{run_id}/exception", {"reason": reason})
        assert code == 200, answer
    status = answer["status"]
    assert [r["reasonCreated"] for r in status["runs"]] == ["scheduled", "retry", "task-retry"]
    assert [r["reasonResolved"] for r in status["runs"]] == reasons
    assert (status["state"], status["retriesLeft"]) == ("exception", 0)
    # the run retried is no longer the current one: reporting it again otherwise is a 409
    code, refused = await queue("POST", f"/task/{task_id}/runs/0/completed")
    assert code == 409


@pytest_twisted.ensureDeferred
async def test_a_retry_run_wakes_a_waiting_claim_work(queue):
    task_id = await create(queue)
    await claim_one(queue)
    polling = queue("POST", f"/claim-work/{HTTP_QUEUE}", {"workerGroup": "grp", "workerId": "w2", "tasks": 1})
    await waiting(queue)
    await queue("POST", f"/task/{task_id}/runs/0/exception", {"reason": "worker-shutdown"})
    code, answer = await polling
    (claim,) = answer["tasks"]
    assert (claim["status"]["taskId"], claim["runId"], claim["workerId"]) == (task_id, 1, "w2")


@pytest_twisted.ensureDeferred
async def test_other_exception_reasons_resolve_without_retry_and_a_bad_reason_is_a_400(queue):
    task_id = await create(queue)
    await claim_one(queue)
    code, refused = await queue("POST", f"/task/{task_id}/runs/0/exception", {"reason": "bored"})
    assert code == 400 and "malformed-payload" in refused["message"]
    code, answer = await queue("POST", f"/task/{task_id}/runs/0/exception", {"reason": "malformed-payload"})
    assert code == 200 and answer["status"]["state"] == "exception" and len(answer["status"]["runs"]) == 1


@pytest_twisted.ensureDeferred
async def test_a_canceled_run_cannot_be_reclaimed(queue):
    task_id = await create(queue)
    await claim_one(queue)
    await queue("POST", f"/task/{task_id}/cancel")
    code, refused = await queue("POST", f"/task/{task_id}/runs/0/reclaim")
    assert code == 409 and "resolved or not running" in refused["message"]


# -- claim-expired ------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_a_claim_not_reclaimed_expires_and_the_task_is_retried(queue):
    task_id = await create(queue, retries=1)
    await claim_one(queue)
    queue.master.reactor.advance(TIMEOUT - 1)
    await queue.master.queue.expire()
    assert (await queue.master.queue.store.get(task_id)).state == "running"
    queue.master.reactor.advance(CLAIM_EXPIRY_INTERVAL_S)
    await queue.master.queue.expire()
    task = await queue.master.queue.store.get(task_id)
    assert [(r["state"], r.get("reasonResolved")) for r in task.runs] == [("exception", "claim-expired"),
                                                                          ("pending", None)]
    assert task.runs[1]["reasonCreated"] == "retry" and task.retries_left == 0
    code, refused = await queue("POST", f"/task/{task_id}/runs/0/reclaim")
    assert code == 409


@pytest_twisted.ensureDeferred
async def test_claims_expire_on_the_masters_clock_once_workers_poll_the_master(queue):
    assert queue.master.queue._expiry is None  # no HTTP worker yet: nothing polled for claims
    task_id = await create(queue, retries=0)
    await claim_one(queue)
    assert queue.master.queue._expiry.running
    queue.master.reactor.advance(TIMEOUT + CLAIM_EXPIRY_INTERVAL_S)

    async def expired():
        return (await queue.master.queue.store.get(task_id)).state == "exception"

    await eventually(expired, "the claim to expire")
    runs = (await queue.master.queue.store.get(task_id)).runs
    assert [r["reasonResolved"] for r in runs] == ["claim-expired"]


@pytest_twisted.ensureDeferred
async def test_a_master_without_task_queues_that_workers_poll_ends_the_wait_past_deadlines(tmp_path):
    http_only = CFG.replace(f"'task_queues': {{'{PB_QUEUE}': {{'pool': 'ci'}}}}, ", "")
    master = await start_memory_master(tmp_path, http_only, now=NOW)
    try:
        assert master.queue._loop is None  # no PB-served queue: the engine's reconciler is off
        task_id = taskcluster.slugId()
        await master.queue.store.create(check_definition(task_id, definition(
            taskQueueId="proj-http/other", deadline=iso(NOW + 60)), NOW), NOW)
        resource = master.www.make_site().resource
        polling = defer.ensureDeferred(render(resource, "POST", f"{QUEUE}/claim-work/{HTTP_QUEUE}",
                                              body=json.dumps({**WORKER, "tasks": 1}).encode(),
                                              headers={**ADMIN, "content-type": "application/json"}))
        await eventually(lambda: defer.succeed(master.queue.waiters.waiting(HTTP_QUEUE) == 1), "the poll")
        master.reactor.advance(60 + CLAIM_EXPIRY_INTERVAL_S)

        async def ended():
            return (await master.queue.store.get(task_id)).state == "exception"

        await eventually(ended, "the deadline to end the wait")
        waiters = master.queue.waiters
        while not polling.called:  # let the long poll answer
            master.reactor.advance(RECHECK_S)
            await eventually(lambda: defer.succeed(polling.called or waiters.waiting(HTTP_QUEUE)),
                             "the poll to wait or answer")
        assert (await polling).code == 200
    finally:
        await master.stopService()


@pytest_twisted.ensureDeferred
async def test_a_master_started_with_claims_in_its_database_expires_them(queue, tmp_path, db_url):
    await create(queue)
    await claim_one(queue)
    await queue.master.stopService()
    restarted = await start_memory_master(tmp_path, on_database(db_url, CFG), now=NOW + 1)
    try:
        assert restarted.queue._expiry.running
    finally:
        await restarted.stopService()


@pytest_twisted.ensureDeferred
async def test_claim_task_claims_one_given_run(queue):
    task_id = await create(queue)
    code, claim = await queue("POST", f"/task/{task_id}/runs/0/claim", WORKER)
    assert code == 200 and valid("task-claim-response", claim)
    assert claim["runId"] == 0 and claim["status"]["state"] == "running"
    code, again = await queue("POST", f"/task/{task_id}/runs/0/claim", WORKER)  # the same worker: its claim
    assert code == 200 and {**again, "credentials": None} == {**claim, "credentials": None}
    code, refused = await queue("POST", f"/task/{task_id}/runs/0/claim", {**WORKER, "workerId": "w9"})
    assert code == 409


@pytest_twisted.ensureDeferred
async def test_a_disabled_issuer_makes_claim_work_a_503_and_ends_the_claims_credentials(queue):
    task_id = await create(queue)
    claim = await claim_one(queue)
    await queue.master.auth.clients.disable(ISSUER_ID)
    code, refused = await queue("POST", f"/claim-work/{HTTP_QUEUE}", {**WORKER, "tasks": 1})
    assert code == 503 and "disabled" in refused["message"]
    code, refused = await queue.signed(claim["credentials"], "POST", f"/task/{task_id}/runs/0/completed")
    assert code == 401 and "disabled" in refused["message"]


# -- settings ------------------------------------------------------------------------------------

def test_the_claim_timeout_defaults_to_taskclusters_and_is_checked():
    settings, problems = validate_queue_config({})
    assert problems == [] and settings.claim_timeout_secs == 1200
    settings, problems = validate_queue_config({"queue": {"claim_timeout_secs": 300}})
    assert problems == [] and settings.claim_timeout_secs == 300
    for bad in (0, 29, 86401, "600", 1.5, True):
        _, problems = validate_queue_config({"queue": {"claim_timeout_secs": bad}})
        assert len(problems) == 1 and "claim_timeout_secs" in problems[0][1], bad
        assert "\n" not in problems[0][1]


# -- migration 0012_queue_claims ---------------------------------------------------------------

def test_migration_0012_ranks_the_tasks_stored_before_it(db_url, tmp_path):
    upgrade_database(db_url, str(tmp_path), revision="0011_queue")
    engine = create_engine(db_url, str(tmp_path))
    ranks = {"high": taskcluster.slugId(), "lowest": taskcluster.slugId()}
    try:
        with engine.begin() as conn:
            for priority, task_id in ranks.items():
                conn.execute(sa.text(
                    "INSERT INTO queue_tasks (task_id, task_group_id, scheduler_id, task_queue_id, "
                    "definition, requires, state, runs, retries_left, created, deadline, expires) VALUES "
                    "(:id, :id, '-', 'a/b', :definition, 'all-completed', 'pending', '[]', 5, 0, 1, 2)"),
                    {"id": task_id, "definition": json.dumps({"priority": priority})})
        upgrade_database(db_url, str(tmp_path))
        with engine.connect() as conn:
            found = dict(conn.execute(sa.text("SELECT task_id, priority_rank FROM queue_tasks")).all())
            assert (found[ranks["high"]], found[ranks["lowest"]]) == (5, 1)
            unclaimed = sa.text("SELECT count(*) FROM queue_tasks WHERE taken_until IS NULL")
            assert conn.execute(unclaimed).scalar() == 2
    finally:
        engine.dispose()
