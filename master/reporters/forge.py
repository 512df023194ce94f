"""What the commit-status reporters of code forges share (github.py, gitlab.py): the token
(``util.Secret`` or ``util.Interpolate('%(secret:...)s')``, rendered at each attempt), the
``context`` (a renderable, default ``buildbot/<buildername>``), ``baseURL``, ``verify``,
``debug``, ``verbose``, the default generators (Buildbot's: "Build started." and "Build
done."), repository URLs (https, ssh and scp-like forms) and the POST of a JSON body.

A 2xx answer is success; a 4xx (not 408/429) gives the report up, logged; a connection
error, a 5xx, a 408/429 or no answer within ``timeout`` fails the attempt, tried again with
backoff (sender.py).  A report names one build; one request is made per source stamp that
has a revision and a repository the forge knows, in order, all again when an attempt failed.
"""

import json
import re
from typing import NamedTuple

import treq
from twisted.logger import Logger
from twisted.web.client import ResponseNeverReceived

from buildfarm.master.process.properties import Interpolate, Properties
from buildfarm.master.reporters.generators.build import BuildStartEndStatusGenerator
from buildfarm.master.reporters.http import REQUEST_TIMEOUT_S, EndpointFailed, HTTPReporterBase
from buildfarm.master.reporters.message import MessageFormatterRenderable
from buildfarm.master.reporters.sender import ReportRejected

log = Logger()

MAX_LOGGED_ANSWER_CHARS = 500
DEFAULT_CONTEXT = "buildbot/%(prop:buildername)s"
RETRIED_CLIENT_ERRORS = (408, 429)

# scheme://[user[:password]@]host[:port]/path, or the scp-like user@host:path of ssh.
_URL = re.compile(r"^(?:(?:https?|ssh|git)://)(?:[^@/]*@)?[^/:]+(?::\d+)?/(?P<path>.+)$")
_SCP = re.compile(r"^(?:[^@/:]+@)?[^/:]+:(?!//)(?P<path>.+)$")


class RepositoryPath(NamedTuple):
    """A forge repository: ``owner`` (may hold subgroups: "group/sub") and ``repo``."""

    owner: str
    repo: str

    @property
    def full(self) -> str:
        return f"{self.owner}/{self.repo}"


def parse_repository_url(url: str | None) -> RepositoryPath | None:
    """Owner and name of a repository from its URL (``https://github.com/o/r.git``,
    ``ssh://git@host:22/o/r``, ``git@github.com:o/r.git``, ``git://host/o/r``); None when
    the URL names no owner/name (a ``file://`` URL, a bare name)."""
    if not url or not isinstance(url, str):
        return None
    url = url.strip()
    match = _URL.match(url) or (None if "://" in url else _SCP.match(url))
    if match is None:
        return None
    path = match.group("path").strip("/")
    if path.endswith(".git"):
        path = path[:-len(".git")]
    owner, _, repo = path.rpartition("/")
    if not owner or not repo:
        return None
    return RepositoryPath(owner, repo)


def build_properties(build: dict) -> Properties:
    """The build's properties (Buildbot's ``{name: [value, source]}``) as ``Properties``, with
    ``buildername`` from the builder when the build has not set it yet (a start's report is
    read before the build's first properties are written)."""
    props = Properties()
    for name, (value, source) in (build.get("properties") or {}).items():
        props.setProperty(name, value, source)
    builder = (build.get("builder") or {}).get("name")
    if builder and not props.hasProperty("buildername"):
        props.setProperty("buildername", builder, "Builder")
    return props


def default_generators() -> list:
    """Buildbot's: a report at each build's start ("Build started.") and end ("Build done.")."""
    return [BuildStartEndStatusGenerator(start_formatter=MessageFormatterRenderable("Build started."),
                                         end_formatter=MessageFormatterRenderable("Build done."))]


class ForgeStatusPush(HTTPReporterBase):
    """The base of GitHubStatusPush and GitLabStatusPush (see the module's docstring):
    subclasses give ``requests_for(report, build, props, context)``, the (path, JSON body)
    of each request to make, and ``auth_headers(token)``."""

    hosted_base_url = ""

    def __init__(self, token, context=None, generators=None, baseURL=None, verbose=False,  # noqa: N803
                 verify=None, debug=None, timeout: float = REQUEST_TIMEOUT_S, name: str | None = None,
                 **kwargs):
        kind = type(self).__name__
        if token is None or (isinstance(token, str) and not token):
            raise ValueError(f"{kind}: token is required (a string or util.Secret)")
        base_url = self.hosted_base_url if baseURL is None else baseURL
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"{kind}: baseURL must be an http:// or https:// URL, not {baseURL!r}")
        super().__init__(generators if generators is not None else self.default_generators(),
                         verify=verify, timeout=timeout, name=name, **kwargs)
        self.token = token
        self.context = self.default_context() if context is None else context
        self.base_url = base_url.rstrip("/")
        self.verbose = bool(verbose)
        self.debug = bool(debug)

    def default_context(self):
        return Interpolate(DEFAULT_CONTEXT)

    def default_generators(self) -> list:
        return default_generators()

    def auth_headers(self, token: str) -> dict:
        raise NotImplementedError

    def requests_for(self, report: dict, build: dict, props: Properties, context) -> list[tuple[str, dict]]:
        raise NotImplementedError

    async def sendMessage(self, reports: list) -> None:  # noqa: N802 - Buildbot's name
        report = reports[0]
        builds = report.get("builds") or []
        if not builds:
            return
        build = builds[0]
        props = build_properties(build)
        context = props.render(self.context)
        requests = self.requests_for(report, build, props, context)
        if not requests:
            return
        token = str(await self.render_secrets(self.token))
        headers = {**self.auth_headers(token), "Content-Type": "application/json",
                   "User-Agent": "Buildbot"}
        for path, body in requests:
            await self._post(path, body, headers)

    async def _post(self, path: str, body: dict, headers: dict) -> None:
        url = self.base_url + path
        try:
            response = await self.client.post(url, data=json.dumps(body).encode("utf-8"), headers=headers,
                                              timeout=self.timeout, reactor=self.master.reactor)
        except ResponseNeverReceived as e:
            why = "; ".join(f.getErrorMessage() or f.type.__name__ for f in e.reasons)
            raise EndpointFailed(f"{url} gave no answer (within {self.timeout:g}s?): {why}") from e
        answer = await treq.text_content(response, encoding="utf-8")
        if self.debug:
            log.info("{kind} {name}: {code}: {answer}", kind=type(self).__name__, name=self.name,
                     code=response.code, answer=answer[:MAX_LOGGED_ANSWER_CHARS])
        if 200 <= response.code < 300:
            if self.verbose:
                log.info("{kind} {name}: {url}: {body}", kind=type(self).__name__, name=self.name,
                         url=url, body=body)
            return
        why = f"{url} answered {response.code}: {answer[:MAX_LOGGED_ANSWER_CHARS]}"
        if 400 <= response.code < 500 and response.code not in RETRIED_CLIENT_ERRORS:
            raise ReportRejected(why)
        raise EndpointFailed(why)


def sourcestamps_of(build: dict) -> list[dict]:
    return list((build.get("buildset") or {}).get("sourcestamps") or [])


def log_skipped(reporter: str, build: dict, stamp: dict, why: str, **fields) -> None:
    """Log a source stamp (or build) a reporter sends nothing for."""
    log.info("reporter {reporter}: nothing sent for build {buildid} ({codebase!r}): {why} {fields}",
             reporter=reporter, buildid=build.get("buildid"), codebase=stamp.get("codebase", ""),
             why=why, fields=fields or "")
