"""Exactly once across masters, as real processes: two masters on one PostgreSQL database.

- idempotent task dedup: pairs of twins sent at the same instant, one of each pair to master A
  and the other to master B (Swarming's tasks/new over HTTP), run once per pair: the other is
  attached to it in flight, or answered from its result;
- a dead master's SlaveAPI action: a slow ``buildslave_uptime`` over ssh (a real sshd whose
  key runs each command after a pause) asked of master A, A SIGKILLed while it runs: master B
  reclaims A, takes the action over (an uptime is safe to repeat), runs it again over ssh and
  records its real result;
- Hawk nonces: a Hawk-signed request accepted by master A and replayed to master B (the same
  ``Host``, as behind one front end) is refused by B with Taskcluster's 401;
- the CAS on S3 (moto's server): items stored through master A (the large one's upload
  finalized through B with A's ticket) are present and read through master B, and the janitor
  of the bucket runs on one master only (its lease).
"""

import base64
import json
import os
import threading
import time
import urllib.error
import urllib.request
import zlib

import mohawk
import pytest
from test_cas_api_e2e import BUCKET, V1, call, item, raw, s3_cas
from test_tasks_e2e import TASK_DEADLINE_S, Swarming, body, task_output, token

from fixtures.daemons import TEST_PASSWORD, TEST_USER, wait_for
from fixtures.moto_server import MotoServer
from fixtures.slaveapi import SlaveAPIClient
from fixtures.sshd import sshd  # noqa: F401  (the fixture)

PAIRS = 15
TASKS_CFG = """\
from buildfarm.master.plugins import slaves
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass', dimensions={{'pool': 'ci'}}),
               slaves.BuildSlave('bs2', 'pass', dimensions={{'pool': 'ci'}})]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}, 'anonymous_scopes': ['tasks:create:ci', 'tasks:read']}}
c['db'] = {{'db_url': {db_url!r}}}
c['tasks'] = {{'min_timeout_secs': 1}}
c['multiMaster'] = True
c['multiMasterSettings'] = {{'heartbeat_secs': 0.5, 'dead_after_secs': 2}}
c['builders'] = []
c['schedulers'] = []
"""


def two_masters(fleet, db_url: str, cfg: str = TASKS_CFG, more: str = ""):
    """Masters A and B of ``cfg`` (formatted) and ``more`` on one database."""
    def config(pb_port, www_port):
        return cfg.format(pb_port=pb_port, www_port=www_port, db_url=db_url) + more

    return fleet.master(config=config), fleet.master(config=config)


def in_pairs(calls: list) -> list:
    """Each ``(call_a, call_b)`` run in two threads released together; the answers in order."""
    answers: list = [None] * (2 * len(calls))
    errors: list = []

    def run(i: int, call, barrier: threading.Barrier) -> None:
        try:
            barrier.wait(TASK_DEADLINE_S)
            answers[i] = call()
        except BaseException as e:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(e)

    threads = []
    for n, pair in enumerate(calls):
        barrier = threading.Barrier(2)
        threads += [threading.Thread(target=run, args=(2 * n + k, call, barrier))
                    for k, call in enumerate(pair)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2 * TASK_DEADLINE_S)
    assert not errors, errors
    return answers


def test_twins_sent_to_two_masters_at_once_run_once(fleet, db_url_postgresql):
    a, b = two_masters(fleet, db_url_postgresql)
    fleet.slave(a, "bs1")
    fleet.slave(b, "bs2")
    a.wait_attached("bs1")
    b.wait_attached("bs2")
    on_a, on_b = Swarming(a.url), Swarming(b.url)
    runs = [os.path.join(fleet.root, f"runs-{n}") for n in range(PAIRS)]
    tasks = [body(["sh", "-c", f"echo run >> {runs[n]}; echo pair {n} {token()}"], idempotent=True)
             for n in range(PAIRS)]

    answers = in_pairs([(lambda t=t: on_a.new(t), lambda t=t: on_b.new(t)) for t in tasks])

    ids = [answer["task_id"] for answer in answers]
    results = [on_a.wait(task_id) for task_id in ids]
    for n in range(PAIRS):
        pair = results[2 * n:2 * n + 2]
        ran = [r for r in pair if "deduped_from" not in r]
        assert len(ran) == 1, (n, pair)
        assert [r["deduped_from"] for r in pair if r is not ran[0]] == [ran[0]["task_id"]]
        assert {(r["state"], r["exit_code"]) for r in pair} == {("COMPLETED", "0")}
        with open(runs[n]) as f:
            assert f.read() == "run\n", n
        assert {on_b.stdout(r["task_id"]) for r in pair} == {task_output(tasks[n])}
    print(f"{PAIRS} pairs of twins sent to two masters at once: {PAIRS} runs")


SLAVEAPI_CFG = """\
from buildfarm.master.plugins import slaves
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': {db_url!r}}}
c['multiMaster'] = True
c['multiMasterSettings'] = {{'heartbeat_secs': 0.5, 'dead_after_secs': 2}}
c['builders'] = []
c['schedulers'] = []
"""
SSH_PAUSE_S = 4  # each command over ssh starts this long after the login


def slow_ssh(server) -> None:
    """Make every command run through ``server`` wait ``SSH_PAUSE_S`` first (the key's
    ``command=`` option, read by sshd at each login)."""
    path = os.path.join(server.root, "authorized_keys")
    with open(path) as f:
        key = f.read().strip()
    with open(path, "w") as f:
        f.write(f'command="sleep {SSH_PAUSE_S}; eval \\"$SSH_ORIGINAL_COMMAND\\"" {key}\n')


def test_a_slaveapi_action_of_a_killed_master_ends_with_its_real_result_on_the_other(
        fleet, db_url_postgresql, sshd):  # noqa: F811
    slow_ssh(sshd)
    inventory = {"slaves": {"bs1": {"ssh": sshd.settings()}}}
    a, b = two_masters(fleet, db_url_postgresql, SLAVEAPI_CFG, f"c['slaveapi'] = {inventory!r}\n")
    on_a = SlaveAPIClient(a.url + "/slaveapi", TEST_USER, TEST_PASSWORD)
    on_b = SlaveAPIClient(b.url + "/slaveapi", TEST_USER, TEST_PASSWORD)
    status, asked = on_a.call("POST", "/slaves/bs1/actions/buildslave_uptime")
    assert status in (200, 202), asked
    path = f"/slaves/bs1/actions/buildslave_uptime?requestid={asked['requestid']}"
    wait_for(lambda: on_b.call("GET", path)[1]["state"] == 1, "the uptime to run on master A")  # RUNNING

    killed_at = time.monotonic()
    a.halt("killed")
    done = wait_for(lambda: (r := on_b.call("GET", path)[1])["state"] in (2, 3) and r,
                    "the uptime to end on master B", 30)
    took = time.monotonic() - killed_at

    assert done["state"] == 2, done  # SUCCESS
    assert done["data"]["uptime"] > 0 and done["story"].endswith(" s (read over ssh)"), done
    assert "buildslave_uptime had started there; it is safe to repeat: run again from the start" \
        in done["story"]
    assert "took it over" in done["story"]
    status, seen = on_b.call("GET", "/results")
    assert status == 200 and seen["bs1"]["buildslave_uptime"][str(asked["requestid"])]["state"] == 2
    print(f"uptime cut short by a SIGKILL of master A: ended SUCCESS on master B {took:.1f} s after the kill "
          f"(dead_after_secs 2, {SSH_PAUSE_S} s over ssh)")


HAWK_CFG = """
c['clients'] = [{'clientId': 'ci/builder', 'accessToken': 'builder-token-0123456789',
                 'scopes': ['builds:read']}]
"""


def hawk_get(url: str, header: str, host: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": header, "Host": host})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_hawk_request_replayed_to_another_master_is_refused(fleet, db_url_postgresql):
    a, b = two_masters(fleet, db_url_postgresql, SLAVEAPI_CFG, HAWK_CFG)
    path = "/api/v1/auth/whoami"
    credentials = {"id": "ci/builder", "key": "builder-token-0123456789", "algorithm": "sha256"}
    header = mohawk.Sender(credentials, a.url + path, "GET", content="", content_type="").request_header
    front = f"127.0.0.1:{a.www_port}"  # the name both masters serve under

    status, me = hawk_get(a.url + path, header, front)
    assert status == 200 and me["user"] == "ci/builder", me
    status, body = hawk_get(b.url + path, header, front)

    assert status == 401, body
    assert body["error"].startswith("Hawk replay: this request (client 'ci/builder', nonce and timestamp) "
                                    "was already received: a replay"), body
    fresh = mohawk.Sender(credentials, a.url + path, "GET", content="", content_type="").request_header
    assert hawk_get(b.url + path, fresh, front)[0] == 200  # a new request is served by either


@pytest.fixture
def moto(tmp_path):
    server = MotoServer.start(str(tmp_path))
    server.s3().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def test_the_cas_on_s3_stores_through_one_master_and_reads_through_the_other(fleet, db_url_postgresql, moto):
    a, b = two_masters(fleet, db_url_postgresql, SLAVEAPI_CFG, f"c['cas'] = {s3_cas(moto)!r}\n")
    for master in (a, b):
        wait_for(lambda m=master: m.request("POST", f"{V1}/server_details", {})[0] == 200, "a web port")
    small, large = b"small file\n", os.urandom(3000) + b"y" * 50_000
    items = [item(small), item(large)]

    status, answer = call(a, "preupload", {"items": items, "namespace": "default-gzip"})
    assert status == 200
    tickets = {int(e["index"]): e for e in answer["items"]}
    body = {"upload_ticket": tickets[0]["upload_ticket"],
            "content": base64.b64encode(zlib.compress(small, 7)).decode()}
    assert call(a, "store_inline", body) == (200, {"ok": True})
    stored = zlib.compress(large, 7)
    status, _, _ = raw("PUT", tickets[1]["gs_upload_url"], stored,
                       {"Content-Type": "application/octet-stream"})
    assert status == 200 and tickets[1]["gs_upload_url"].startswith(a.url)
    # A's ticket finalized through B: the masters share the upload secret and the bucket
    finalize = {"upload_ticket": tickets[1]["upload_ticket"]}
    assert call(b, "finalize_gs_upload", finalize) == (200, {"ok": True})

    assert call(b, "preupload", {"items": items, "namespace": "default-gzip"}) == (200, {})
    status, answer = call(b, "retrieve", {"digest": items[0]["digest"], "namespace": "default-gzip"})
    assert status == 200 and zlib.decompress(base64.b64decode(answer["content"])) == small
    status, answer = call(b, "retrieve", {"digest": items[1]["digest"], "namespace": "default-gzip"})
    assert status == 200 and answer["url"].startswith(b.url)
    status, _, got = raw("GET", answer["url"])
    assert status == 200 and zlib.decompress(got) == large
    keys = [o["Key"] for o in moto.s3().list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert sum(1 for k in keys if items[0]["digest"] in k or items[1]["digest"] in k) == 2, keys

    lease = f"lease cas-janitor:s3:{moto.endpoint_url}/{BUCKET}: this master runs it now"
    wait_for(lambda: lease in a.log_text() or lease in b.log_text(), "a master to run the bucket's janitor")
    assert [lease in m.log_text() for m in (a, b)].count(True) == 1
