"""A PB payload's files (master/queue/payload.py, the Queue service's part): ``mounts`` from the
CAS by hash become the task's input tree, ``artifacts`` its outputs, registered after the run as
the run's object artifacts (an error artifact for one the run did not make); malformed ones
resolve the run ``malformed-payload``."""

import hashlib

import pytest
import pytest_twisted
import taskcluster

from buildfarm.common import isolated as isolated_format
from buildfarm.master.auth.interfaces import iso
from buildfarm.master.objectservice.content import NAMESPACE, store_content
from buildfarm.master.objectservice.objects import ObjectStore
from buildfarm.master.queue.artifacts import ArtifactStore
from buildfarm.master.queue.model import check_definition
from buildfarm.master.queue.payload import MalformedPayload, engine_request, payload_files, prepare_inputs
from buildfarm.master.queue.store import StoredTask
from fixtures.memorymaster import MASTER_CFG, memory_master_fixture

NOW = 1_800_000_000.0
CFG = MASTER_CFG + """\
c['queue'] = {'task_queues': {'proj-ci/linux': {'pool': 'ci'}}}
"""
master = memory_master_fixture(CFG, now=NOW)
SHA = "a" * 64


def payload(**files) -> dict:
    return {"command": [["true"]], "maxRunTime": 60, **files}


def body(**changes) -> dict:
    given = {"taskQueueId": "proj-ci/linux", "created": iso(NOW), "deadline": iso(NOW + 3600),
             "payload": payload(), "projectId": "proj",
             "metadata": {"name": "t", "description": "d", "owner": "o", "source": "s"}}
    given.update(changes)
    return given


@pytest.mark.parametrize(("files", "words"), [
    ({"mounts": [{"content": {"url": "https://x/a.zip"}, "file": "a"}]}, "url, raw, base64"),
    ({"mounts": [{"content": {"sha256": "xyz"}, "file": "a"}]}, "64 lower-case hex"),
    ({"mounts": [{"content": {"sha256": SHA}, "directory": "a", "format": "zip"}]}, "format 'zip'"),
    ({"mounts": [{"content": {"sha256": SHA}, "file": "a", "directory": "b"}]}, "file or directory"),
    ({"mounts": [{"content": {"sha256": SHA}, "file": "/etc/passwd"}]}, "absolute"),
    ({"artifacts": [{"type": "file", "path": "../up"}]}, "'..'"),
    ({"artifacts": [{"type": "socket", "path": "a"}]}, "type must be"),
    ({"artifacts": [{"type": "file", "path": "a", "expires": "soon"}]}, "expires must be a date"),
    ({"artifacts": "out"}, "lists"),
])
def test_malformed_mounts_and_artifacts_say_what_is_wrong(files, words):
    with pytest.raises(MalformedPayload, match=words):
        payload_files(payload(**files))


def test_the_artifacts_paths_are_the_engine_tasks_outputs():
    task_id = taskcluster.slugId()
    definition = check_definition(task_id, body(payload=payload(artifacts=[
        {"type": "file", "path": "out/a.txt", "name": "public/a.txt"},
        {"type": "directory", "path": "out/logs"}])), NOW)
    task = StoredTask(task_id, definition.body, "pending", [{"runId": 0, "state": "pending"}], 5, NOW + 3600)
    mounts, artifacts = payload_files(task.body["payload"])
    assert mounts == [] and [a.name for a in artifacts] == ["public/a.txt", "out/logs"]
    props = engine_request(task, {"pool": ["ci"]}, NOW, 30).task_slices[0].properties
    assert props.outputs == ("out/a.txt", "out/logs")


@pytest_twisted.ensureDeferred
async def test_mounts_become_one_isolated_tree_in_the_sha256_flat_namespace(master):
    cas = master.cas
    tool = await store_content(cas, b"#!/bin/sh\necho tool\n")
    data = await store_content(cas, b"input data\n")
    tree = isolated_format.Isolated(algo="sha-256", files={
        "bin/tool": isolated_format.FileEntry(digest=tool["sha256"], size=tool["size"], mode=0o755)})
    document = isolated_format.serialise(tree)
    tree_digest = hashlib.sha256(document).hexdigest()
    await cas.store.put(NAMESPACE, tree_digest, len(document), document)
    mounts, artifacts = payload_files(payload(mounts=[
        {"content": {"sha256": data["sha256"]}, "file": "in/data.txt"},
        {"content": {"sha256": tree_digest}, "directory": "tools"}]))
    inputs = await prepare_inputs(cas, mounts, artifacts)
    assert inputs.namespace == "sha256-flat"
    stored, _ = await cas.store.get(NAMESPACE, inputs.isolated)
    files = isolated_format.parse(stored, "sha-256").files
    assert files["in/data.txt"].digest == data["sha256"] and files["in/data.txt"].size == len(b"input data\n")
    assert files["tools/bin/tool"] == tree.files["bin/tool"]
    missing, _ = payload_files(payload(mounts=[{"content": {"sha256": SHA}, "file": "x"}]))
    with pytest.raises(MalformedPayload, match="is not in the store"):
        await prepare_inputs(cas, missing, [])
    assert await prepare_inputs(cas, [], []) is None


async def create(master, **changes) -> str:
    task_id = taskcluster.slugId()
    await master.queue.store.create(check_definition(task_id, body(**changes), NOW), NOW)
    return task_id


@pytest_twisted.ensureDeferred
async def test_a_mount_not_in_the_store_resolves_the_run_malformed_payload(master):
    task_id = await create(master, payload=payload(mounts=[{"content": {"sha256": SHA}, "file": "x"}]))
    await master.queue.poke()
    task = await master.queue.store.get(task_id)
    assert (task.state, task.runs[0]["reasonResolved"]) == ("exception", "malformed-payload")


@pytest_twisted.ensureDeferred
async def test_a_runs_outputs_become_its_object_artifacts_before_it_resolves(master):
    task_id = await create(master, payload=payload(artifacts=[
        {"type": "file", "path": "out/report.html", "name": "public/report.html"},
        {"type": "directory", "path": "out/logs", "name": "public/logs"},
        {"type": "file", "path": "out/core", "name": "private/core"}]))
    await master.queue.poke()
    queued = await master.queue.store.get(task_id)
    request = await master.db.tasks.get_request(queued.engine_task_id)
    assert request is not None
    # what the slave would have archived: the out directory's tree, in sha256-flat
    cas = master.cas
    report, log = await store_content(cas, b"<p>ok</p>"), await store_content(cas, b"step 1\n")
    out = isolated_format.Isolated(algo="sha-256", files={
        "out/report.html": isolated_format.FileEntry(digest=report["sha256"], size=report["size"]),
        "out/logs/build.log": isolated_format.FileEntry(digest=log["sha256"], size=log["size"])})
    document = isolated_format.serialise(out)
    out_digest = hashlib.sha256(document).hexdigest()
    await cas.store.put(NAMESPACE, out_digest, len(document), document)
    await master.db.tasks.end_pending(queued.engine_task_id, "COMPLETED", NOW + 2, exit_code=0, slave="bs1",
                                      started_at=NOW + 1, outputs_ref={"isolated": out_digest,
                                                                       "namespace": "sha256-flat"})
    await master.queue.poke()
    assert (await master.queue.store.get(task_id)).state == "completed"
    artifacts = {a.name: a for a in await ArtifactStore(master.db).list(task_id, 0, None, 10)}
    assert sorted(artifacts) == ["private/core", "public/logs/build.log", "public/report.html"]
    assert (artifacts["public/report.html"].storage_type, artifacts["public/report.html"].content_type) == \
        ("object", "text/html")
    assert artifacts["private/core"].storage_type == "error"
    assert artifacts["private/core"].details["reason"] == "file-missing-on-worker"
    found = await ObjectStore(master.db).finished(f"t/{task_id}/0/public/logs/build.log", NOW)
    assert found.received == log and found.project_id == "proj"
