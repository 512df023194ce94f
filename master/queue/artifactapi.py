"""The Queue's artifact calls (docs/taskcluster.md, "Artifacts and the Object service"), a route
mixin of ``QueueAPI`` (queue/routing.py says how), in Taskcluster's shapes so that the official
client's ``taskcluster.upload``/``taskcluster.download`` helpers work unchanged.

- ``createArtifact`` (``queue:create-artifact:<taskId>/<runId>``) on a running run (or one
  resolved ``exception`` less than ``LATE_UPLOAD_S`` ago): an ``object`` artifact begins an
  upload of the Object service (objectservice/) named ``t/<taskId>/<runId>/<name>`` and answers
  temporary credentials for that one object (``object:upload:<projectId>:<object name>``);
  ``reference``, ``link`` and ``error`` artifacts are present at once;
- ``finishArtifact`` makes an object artifact present once its object is finished;
- ``artifact``/``latestArtifact`` answer how to get the content (an object's name and download
  credentials, a reference's URL, an error's reason); ``getArtifact``/``getLatestArtifact``
  redirect (303) to a signed URL of the object's bytes or to the reference, and answer 424 with
  an error artifact's reason and message; links are followed (a cycle is a 400);
- reading needs ``queue:get-artifact:<name>`` for each name followed, except names under
  ``public/``, which anyone may read without credentials;
- ``listArtifacts``/``listLatestArtifacts`` (``queue:list-artifacts:<taskId>:<runId>`` /
  ``queue:list-artifacts:<taskId>``) page the present artifacts by name with
  ``continuationToken``; ``artifactInfo``/``latestArtifactInfo`` answer one.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from functools import cached_property

from buildfarm.master.auth.scopes import ALL_OF
from buildfarm.master.http.body import json_object, read_body
from buildfarm.master.http.routes import PUBLIC
from buildfarm.master.http.tcservice import json_answer
from buildfarm.master.objectservice.api import download_url
from buildfarm.master.objectservice.content import GoneFromStore, check_stored
from buildfarm.master.objectservice.dataurls import signer_of
from buildfarm.master.objectservice.issuer import CredentialsIssuer
from buildfarm.master.objectservice.objects import ObjectConflict, ObjectStore, UnknownObject
from buildfarm.master.queue import apireference as ref
from buildfarm.master.queue.artifacts import (
    ERROR,
    LINK,
    OBJECT,
    REFERENCE,
    STORAGE_TYPES,
    ArtifactConflict,
    ArtifactStore,
    StoredArtifact,
    object_name,
)
from buildfarm.master.queue.model import EXCEPTION, RUNNING, parse_date
from buildfarm.master.queue.routing import (
    PREFIX,
    QueueAPIError,
    api_entry,
    page_args,
    routes,
    task_id_arg,
)
from buildfarm.master.queue.store import StoredTask, UnknownQueueTask

MAX_BODY_BYTES = 64 * 1024
NAME_RE = re.compile(r"^[\x20-\x7e]{1,1024}$")  # printable ASCII, as Taskcluster's
PUBLIC_PREFIX = "public/"  # names anyone may read
EXPIRES_SKEW_S = 15 * 60  # an artifact's expiry may be this far in the past (clock drift)
LATE_UPLOAD_S = 25 * 60  # after an exception, artifacts are taken this long (Taskcluster's)
UPLOAD_CREDENTIALS_S = 24 * 3600  # at most; never past the artifact's expiry
DOWNLOAD_CREDENTIALS_S = 3600
DEFAULT_CONTENT_TYPE = "application/binary"  # Taskcluster's
MAX_LIST_LIMIT = 1000
ERROR_REASONS = ("file-missing-on-worker", "invalid-resource-on-worker", "too-large-file-on-worker",
                 "file-not-readable-on-worker")
MAX_MESSAGE_CHARS = 4096
MAX_URL_CHARS = 4096
STORAGE_TYPE_HEADER = b"x-taskcluster-artifact-storage-type"
RUN = "/task/<taskId>/runs/<int:runId>"
CREATE_SCOPE = "queue:create-artifact:{taskId}/{runId}"
LIST_SCOPE = "queue:list-artifacts:{taskId}"


def artifact_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise QueueAPIError(400, "an artifact name is 1 to 1024 printable ASCII characters")
    return value


class ArtifactRoutes:
    """The artifact routes of ``QueueAPI`` (which gives ``master``, ``clock`` and ``store``)."""

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.master.db, self.master.mq)

    @cached_property
    def objects(self) -> ObjectStore:
        return ObjectStore(self.master.db)

    @cached_property
    def object_signer(self):
        return signer_of(self.master)

    @cached_property
    def issuer(self) -> CredentialsIssuer:
        return CredentialsIssuer(self.master.auth.clients, self.master.reactor)

    # -- creating ----------------------------------------------------------------------------

    @routes.route(f"{PREFIX}{RUN}/artifacts/<path:name>", "POST", scope=CREATE_SCOPE,
                  api=api_entry("createArtifact", "Create Artifact",
                                "Create an artifact of a running run (or of one resolved `exception` less "
                                "than 25 minutes ago): `object` (answers the Object service's upload name, "
                                "uploadId and temporary credentials for that one object; call "
                                "finishArtifact once uploaded), `reference` (a URL), `link` (another "
                                "artifact of the run) or `error` (reason and message).", "Artifacts",
                                input=ref.POST_ARTIFACT, output=ref.POST_ARTIFACT_RESPONSE))
    async def create_artifact(self, request, taskId, runId, name):  # noqa: N803 - Taskcluster's names
        """``createArtifact``: see the module."""
        body = json_object(read_body(request, MAX_BODY_BYTES))
        name = artifact_name(name)
        now = self.clock.seconds()
        storage_type = body.get("storageType")
        if storage_type not in STORAGE_TYPES:
            raise QueueAPIError(400, f"storageType must be one of {', '.join(STORAGE_TYPES)} (s3 is not "
                                     "served: use object)")
        problems: list[str] = []
        expires = parse_date(body.get("expires"), "expires", problems)
        if problems:
            raise QueueAPIError(400, problems[0])
        if expires < now - EXPIRES_SKEW_S:
            raise QueueAPIError(400, "expires must be in the future")
        task, run = await self._creatable_run(taskId, runId, expires, now)
        content_type = body.get("contentType", DEFAULT_CONTENT_TYPE)
        if not isinstance(content_type, str) or not content_type.isascii() or len(content_type) > 255:
            raise QueueAPIError(400, "contentType must be at most 255 ASCII characters")
        length = body.get("contentLength")
        if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 0):
            raise QueueAPIError(400, "contentLength must be a number of bytes")
        details, upload = await self._details(task, runId, name, storage_type, body, expires, now)
        try:
            await self.artifacts.create(StoredArtifact(taskId, runId, name, storage_type, content_type,
                                                       expires, details, storage_type != OBJECT, length), now)
        except ArtifactConflict as e:
            original = e.original
            raise QueueAPIError(409, str(e), {"originalArtifact": {
                "storageType": original.storage_type, "contentType": original.content_type,
                "expires": original.info()["expires"]}}) from None
        if upload is None:
            return json_answer(request, {"storageType": storage_type})
        credentials = await self.issuer.issue(
            f"artifact-upload/{taskId}/{runId}/on/{run['workerGroup']}/{run['workerId']}",
            [f"object:upload:{upload['projectId']}:{upload['name']}"],
            min(expires, now + UPLOAD_CREDENTIALS_S))
        return json_answer(request, {"storageType": OBJECT, **upload, "expires": body["expires"],
                                     "credentials": credentials})

    async def _creatable_run(self, task_id: str, run_id: int, expires: float, now: float) -> tuple[StoredTask,
                                                                                                     dict]:
        """The task and the run artifacts may be created for; ``QueueAPIError`` otherwise."""
        try:
            task = await self.store.get(task_id_arg(task_id))
        except UnknownQueueTask:
            raise QueueAPIError(400, f"no task {task_id}") from None
        if run_id >= len(task.runs):
            raise QueueAPIError(400, f"task {task_id} has no run {run_id}")
        run = task.runs[run_id]
        if not run.get("workerGroup") or not run.get("workerId"):
            raise QueueAPIError(400, f"run {run_id} of task {task_id} was not claimed by a worker, so no "
                                     "artifacts can exist")
        if expires > _expiry_of(task):
            raise QueueAPIError(400, f"expires must not be after the task's ({task.body['expires']})")
        resolved = parse_date(run.get("resolved"), "resolved", []) or 0
        late = run["state"] == EXCEPTION and now - resolved < LATE_UPLOAD_S
        if run["state"] != RUNNING and not late:
            raise QueueAPIError(409, f"run {run_id} of task {task_id} is {run['state']}: artifacts are taken "
                                     "while it runs (and 25 minutes after an exception)",
                                {"status": task.status()})
        return task, run

    async def _details(self, task: StoredTask, run_id: int, name: str, storage_type: str, body: dict,
                       expires: float, now: float) -> tuple[dict, dict | None]:
        """The artifact's details and, for an object, the upload begun ``{name, projectId, uploadId}``."""
        if storage_type == OBJECT:
            upload = {"name": object_name(task.task_id, run_id, name), "projectId": task.body["projectId"],
                      "uploadId": _slugid()}
            try:  # "lock in" the upload: only the uploadId's holder may upload this object
                await self.objects.create_upload(upload["name"], upload["projectId"], upload["uploadId"],
                                                 expires, {}, now)
            except ObjectConflict:
                raise QueueAPIError(409, f"artifact {name!r} already exists (an object artifact is created "
                                         "once)") from None
            return {"uploadId": upload["uploadId"]}, upload
        if storage_type == REFERENCE:
            url = body.get("url")
            if not isinstance(url, str) or not re.match(r"^https?://", url) or len(url) > MAX_URL_CHARS:
                raise QueueAPIError(400, "a reference artifact needs url, an http(s) URL")
            return {"url": url}, None
        if storage_type == LINK:
            target = body.get("artifact")
            if not isinstance(target, str):
                raise QueueAPIError(400, "a link artifact needs artifact, the name of the artifact it "
                                         "links to")
            return {"artifact": artifact_name(target)}, None
        reason, message = body.get("reason"), body.get("message")
        if reason not in ERROR_REASONS or not isinstance(message, str) or len(message) > MAX_MESSAGE_CHARS:
            raise QueueAPIError(400, f"an error artifact needs reason (one of {', '.join(ERROR_REASONS)}) "
                                     f"and message (at most {MAX_MESSAGE_CHARS} characters)")
        return {"reason": reason, "message": message}, None

    @routes.route(f"{PREFIX}{RUN}/artifacts/<path:name>", "PUT", scope=CREATE_SCOPE,
                  api=api_entry("finishArtifact", "Finish Artifact",
                                "Make an object artifact present once its object is uploaded and finished "
                                "(`{uploadId}`); again on a present one it is idempotent.", "Artifacts",
                                input=ref.FINISH_ARTIFACT))
    async def finish_artifact(self, request, taskId, runId, name):  # noqa: N803
        """``finishArtifact``: ``{uploadId}`` -> 204."""
        body = json_object(read_body(request, MAX_BODY_BYTES))
        found = await self.artifacts.get(task_id_arg(taskId), runId, artifact_name(name))
        if found is None:
            raise QueueAPIError(404, f"task {taskId} run {runId} has no artifact {name!r}")
        if found.storage_type != OBJECT:
            raise QueueAPIError(400, "only object artifacts can be finished")
        if not found.present:
            if body.get("uploadId") != found.details.get("uploadId"):
                raise QueueAPIError(400, "the uploadId given is not the artifact's")
            try:
                await self.objects.finished(object_name(taskId, runId, name), self.clock.seconds())
            except UnknownObject:
                raise QueueAPIError(400, "the object storing the artifact's data is not uploaded and "
                                         "finished (the Object service's finishUpload)") from None
            await self.artifacts.mark_present(taskId, runId, name)
        request.setResponseCode(204)
        return b""

    # -- reading -----------------------------------------------------------------------------

    async def _latest_run(self, task_id: str) -> int:
        task = await self.store.get(task_id_arg(task_id))
        if not task.runs:
            raise QueueAPIError(404, f"task {task_id} has no runs")
        return task.run_id

    async def _may_read(self, request, names: list[str]) -> None:
        """``queue:get-artifact:<name>`` for each name not under ``public/``."""
        required = [f"queue:get-artifact:{n}" for n in names if not n.startswith(PUBLIC_PREFIX)]
        if required:
            await self.master.auth.authorize(request, {ALL_OF: required}, False)

    async def _follow(self, request, task_id: str, run_id: int, name: str) -> StoredArtifact:
        """The artifact ``name`` of the run, links followed, each name read checked."""
        names = [artifact_name(name)]
        while True:
            await self._may_read(request, names)
            found = await self.artifacts.get(task_id_arg(task_id), run_id, names[-1])
            if found is None or not found.present:
                raise QueueAPIError(404, f"task {task_id} run {run_id} has no artifact {names[-1]!r}")
            if found.expires < self.clock.seconds():
                raise QueueAPIError(404, f"artifact {names[-1]!r} of task {task_id} run {run_id} expired")
            if found.storage_type != LINK:
                return found
            target = found.details["artifact"]
            if target in names:
                raise QueueAPIError(400, f"artifact {name!r} leads to a link cycle ({' -> '.join(names)})")
            names.append(target)

    async def _redirect(self, request, task_id: str, run_id: int, name: str) -> bytes:
        found = await self._follow(request, task_id, run_id, name)
        request.setHeader(STORAGE_TYPE_HEADER, found.storage_type.encode())
        if found.storage_type == ERROR:
            details = found.details
            return json_answer(request, {"reason": details["reason"], "message": details["message"]}, 424)
        if found.storage_type == REFERENCE:
            url = found.details["url"]
        else:
            stored = await self._object_of(found)
            url, _ = download_url(request, self.object_signer, stored, self.clock.seconds())
        request.setHeader(b"location", url.encode())
        return json_answer(request, {"storageType": found.storage_type, "url": url}, 303)

    async def _object_of(self, found: StoredArtifact):
        """The finished object of ``found``, its bytes still in the store; 404 otherwise."""
        try:
            stored = await self.objects.finished(object_name(found.task_id, found.run_id, found.name),
                                                 self.clock.seconds())
            await check_stored(self.master.cas, stored.name, stored.digest)
        except UnknownObject:
            raise QueueAPIError(404, f"the object of artifact {found.name!r} does not exist") from None
        except GoneFromStore as e:
            raise QueueAPIError(404, str(e)) from None
        return stored

    async def _content(self, request, task_id: str, run_id: int, name: str) -> bytes:
        found = await self._follow(request, task_id, run_id, name)
        if found.storage_type == ERROR:
            return json_answer(request, {"storageType": ERROR, "reason": found.details["reason"],
                                         "message": found.details["message"]})
        if found.storage_type == REFERENCE:
            return json_answer(request, {"storageType": REFERENCE, "url": found.details["url"]})
        stored = await self._object_of(found)
        credentials = await self.issuer.issue(f"artifact-download/{task_id}/{run_id}",
                                              [f"object:download:{stored.name}"],
                                              self.clock.seconds() + DOWNLOAD_CREDENTIALS_S)
        return json_answer(request, {"storageType": OBJECT, "name": stored.name, "credentials": credentials})

    @routes.route(f"{PREFIX}{RUN}/artifacts/<path:name>", "GET", scope=PUBLIC,
                  api=api_entry("getArtifact", "Get Artifact Data from Run",
                                "A 303 to the artifact's data (an object's signed URL, a reference's URL); "
                                "424 with an error artifact's reason and message. Needs "
                                "`queue:get-artifact:<name>` (for each link followed), except under "
                                "`public/`.", "Artifacts", output=ref.GET_ARTIFACT))
    async def get_artifact(self, request, taskId, runId, name):  # noqa: N803
        """``getArtifact``."""
        return await self._redirect(request, taskId, runId, name)

    @routes.route(f"{PREFIX}/task/<taskId>/artifacts/<path:name>", "GET", scope=PUBLIC,
                  api=api_entry("getLatestArtifact", "Get Artifact Data from Latest Run",
                                "getArtifact of the task's latest run.", "Artifacts",
                                output=ref.GET_ARTIFACT))
    async def get_latest_artifact(self, request, taskId, name):  # noqa: N803
        """``getLatestArtifact``."""
        await self._may_read(request, [artifact_name(name)])  # before saying whether the task exists
        return await self._redirect(request, taskId, await self._latest_run(taskId), name)

    @routes.route(f"{PREFIX}{RUN}/artifact-content/<path:name>", "GET", scope=PUBLIC,
                  api=api_entry("artifact", "Get Artifact Content From Run",
                                "How to get the content: `{storageType: object, name, credentials}` (the "
                                "Object service's name and download credentials), `{storageType: "
                                "reference, url}` or `{storageType: error, reason, message}`. Scopes as "
                                "getArtifact's.", "Artifacts", output=ref.ARTIFACT_CONTENT))
    async def artifact(self, request, taskId, runId, name):  # noqa: N803
        """``artifact``: what ``taskcluster.download.downloadArtifact`` reads."""
        return await self._content(request, taskId, runId, name)

    @routes.route(f"{PREFIX}/task/<taskId>/artifact-content/<path:name>", "GET", scope=PUBLIC,
                  api=api_entry("latestArtifact", "Get Artifact Content From Latest Run",
                                "artifact of the task's latest run.", "Artifacts",
                                output=ref.ARTIFACT_CONTENT))
    async def latest_artifact(self, request, taskId, name):  # noqa: N803
        """``latestArtifact``."""
        await self._may_read(request, [artifact_name(name)])
        return await self._content(request, taskId, await self._latest_run(taskId), name)

    # -- listing -----------------------------------------------------------------------------

    async def _run_of(self, task_id: str, run_id: int) -> int:
        if run_id > await self._latest_run(task_id):
            raise QueueAPIError(404, f"task {task_id} has no run {run_id}")
        return run_id

    async def _page(self, request, task_id: str, run_id: int) -> bytes:
        limit, after = page_args(request, _read_token, MAX_LIST_LIMIT)
        found = await self.artifacts.list(task_id, run_id, after, limit + 1)
        shown = found[:limit]
        answer: dict = {"artifacts": [a.info() for a in shown]}
        if len(found) > limit:
            answer["continuationToken"] = _token(shown[-1].name)
        return json_answer(request, answer)

    @routes.route(f"{PREFIX}{RUN}/artifacts", "GET", scope="queue:list-artifacts:{taskId}:{runId}",
                  api=api_entry("listArtifacts", "Get Artifacts from Run",
                                "The run's present artifacts by name; paged with `continuationToken` (at "
                                "most 1000 a page).", "Artifacts", query=ref.PAGE_QUERY,
                                output=ref.LIST_ARTIFACTS))
    async def list_artifacts(self, request, taskId, runId):  # noqa: N803
        """``listArtifacts``: ``{artifacts: [...], continuationToken?}``."""
        return await self._page(request, taskId, await self._run_of(taskId, runId))

    @routes.route(f"{PREFIX}/task/<taskId>/artifacts", "GET", scope="queue:list-artifacts:{taskId}",
                  api=api_entry("listLatestArtifacts", "Get Artifacts from Latest Run",
                                "listArtifacts of the task's latest run.", "Artifacts", query=ref.PAGE_QUERY,
                                output=ref.LIST_ARTIFACTS))
    async def list_latest_artifacts(self, request, taskId):  # noqa: N803
        """``listLatestArtifacts``."""
        return await self._page(request, taskId, await self._latest_run(taskId))

    async def _info(self, request, task_id: str, run_id: int, name: str) -> bytes:
        found = await self.artifacts.get(task_id, run_id, artifact_name(name))
        if found is None or not found.present:
            raise QueueAPIError(404, f"task {task_id} run {run_id} has no artifact {name!r}")
        return json_answer(request, found.info())

    @routes.route(f"{PREFIX}{RUN}/artifact-info/<path:name>", "GET", scope=LIST_SCOPE + ":{runId}",
                  api=api_entry("artifactInfo", "Get Artifact Information From Run",
                                "One artifact as listArtifacts shows it.", "Artifacts",
                                output=ref.ARTIFACT_INFO))
    async def artifact_info(self, request, taskId, runId, name):  # noqa: N803
        """``artifactInfo``."""
        return await self._info(request, task_id_arg(taskId), await self._run_of(taskId, runId), name)

    @routes.route(f"{PREFIX}/task/<taskId>/artifact-info/<path:name>", "GET", scope=LIST_SCOPE,
                  api=api_entry("latestArtifactInfo", "Get Artifact Information From Latest Run",
                                "artifactInfo of the task's latest run.", "Artifacts",
                                output=ref.ARTIFACT_INFO))
    async def latest_artifact_info(self, request, taskId, name):  # noqa: N803
        """``latestArtifactInfo``."""
        return await self._info(request, task_id_arg(taskId), await self._latest_run(taskId), name)


def _expiry_of(task: StoredTask) -> float:
    return parse_date(task.body["expires"], "expires", [])


def _slugid() -> str:
    """A new slugid (a v4 UUID in URL-safe base64, as the client's ``slugid.nice``)."""
    raw = bytearray(secrets.token_bytes(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    raw[0] &= 0x7F  # "nice": the first character is a letter
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def _read_token(token: str) -> str | None:
    """The artifact name a ``continuationToken`` of ours carries (``_token``), or None."""
    try:
        padded = token + "=" * (-len(token) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        return None


def _token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode("ascii")).decode().rstrip("=")
