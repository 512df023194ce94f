"""Build report generators (Buildbot's ``reporters.generators.build``).

``BuildStatusGenerator`` reports finished builds whose results its ``mode`` names (and,
with ``report_new``, started ones); ``BuildStartEndStatusGenerator`` reports every build's
start and end ("Build started." and "Build done." unless its formatters say otherwise).  A
report whose formatter gives no subject gets Buildbot's "Buildbot <result> in <title> on
<builder>" (or the generator's ``subject`` pattern, which Buildbot 4 no longer takes).  Both
filter on ``builders``, ``tags``, ``schedulers`` and ``branches``.
"""

from zope.interface import implementer

from buildfarm.common.results import CANCELLED, EXCEPTION, FAILURE, SUCCESS, WARNINGS
from buildfarm.master.process.buildevents import BUILD_FINISHED, BUILD_STARTED
from buildfarm.master.process.steps.source.base import Patch, StepFailed
from buildfarm.master.reporters.interfaces import IReportGenerator
from buildfarm.master.reporters.message import MessageFormatter, MessageFormatterRenderable, status_to_string
from buildfarm.master.reporters.utils import responsible_users

MODES = ("change", "failing", "passing", "problem", "warnings", "exception", "cancelled")
ALL_MODES = ("failing", "passing", "warnings", "exception", "cancelled")
DEFAULT_MODE = ("failing", "passing", "warnings")
# The subject of a report whose formatter gives none (Buildbot's).
DEFAULT_SUBJECT = "Buildbot %(result)s in %(title)s on %(builder)s"


def expand_mode(mode) -> tuple[str, ...]:
    """Buildbot's shortcuts: "all" is every result, "warnings" is warnings and failures."""
    if isinstance(mode, str):
        if mode == "all":
            return ALL_MODES
        if mode == "warnings":
            return ("failing", "warnings")
        mode = (mode,)
    modes = tuple(mode)
    for one in modes:
        if one not in MODES:
            hint = " ('all' must be given alone, not in a list)" if one == "all" else ""
            raise ValueError(f"mode {one!r} is not one of {', '.join(MODES)}{hint}")
    return modes


def results_wanted(mode: tuple[str, ...], results, previous_results) -> bool:
    """Whether a build that ended with ``results`` is reported in ``mode``."""
    if "change" in mode and previous_results is not None and previous_results != results:
        return True
    if "problem" in mode and results == FAILURE and previous_results not in (None, FAILURE):
        return True
    wanted = {"failing": FAILURE, "passing": SUCCESS, "warnings": WARNINGS,
              "exception": EXCEPTION, "cancelled": CANCELLED}
    return any(results == wanted[m] for m in mode if m in wanted)


def _names(value, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of strings, not {value!r}")
    return list(value)


class BuildGeneratorBase:
    """The filters and the message both build generators share."""

    wanted_event_kinds: tuple[str, ...] = ()
    wants_missing_slaves = False

    def __init__(self, tags=None, builders=None, schedulers=None, branches=None, subject=None,
                 add_logs=None, add_patch=False, message_formatter=None):
        self.tags = _names(tags, "tags")
        self.builders = _names(builders, "builders")
        self.schedulers = _names(schedulers, "schedulers")
        self.branches = branches if branches is None else list(branches)
        self.subject = subject
        self.add_logs = add_logs
        self.add_patch = add_patch
        self.formatter = message_formatter or MessageFormatter()

    def build_wanted(self, build: dict) -> bool:
        """Whether the build's builder, tags, scheduler and branch pass the filters."""
        builder, props = build["builder"], build["properties"]
        if self.builders is not None and builder["name"] not in self.builders:
            return False
        if self.tags is not None and not set(self.tags) & set(builder["tags"]):
            return False
        if self.schedulers is not None and props.get("scheduler", [None])[0] not in self.schedulers:
            return False
        if self.branches is not None and props.get("branch", [None])[0] not in self.branches:
            return False
        return True

    async def build_message(self, master, build: dict, mode=(), formatter=None) -> dict:
        formatter = formatter or self.formatter
        users = await responsible_users(master, build)
        message = await formatter.format_message_for_build(master, build, mode=mode, users=users)
        subject = message["subject"]
        if subject is None and self.subject is not None:
            subject = self.subject % {"result": status_to_string(build["results"]),
                                      "projectName": master.config.title, "title": master.config.title,
                                      "builder": build["builder"]["name"]}
        return {
            "body": message["body"],
            "subject": subject,
            "type": message["type"],
            "results": build["results"],
            "builds": [build],
            "buildset": build["buildset"],
            "users": users,
            "patches": self._patches(build),
            "logs": self._logs(build),
            "extra_info": message["extra_info"],
        }

    def _patches(self, build: dict) -> list[dict]:
        """With ``add_patch``: the patches the build applied (try-style builds), from its
        ``sourcestamps`` and ``patch`` properties, as Buildbot's ``{body, level, subdir}``."""
        if not self.add_patch:
            return []
        props = build.get("properties") or {}
        stamps = (props.get("sourcestamps") or [None])[0]
        values = [stamp.get("patch") for stamp in stamps if isinstance(stamp, dict)] \
            if isinstance(stamps, list) else []
        values.append((props.get("patch") or [None])[0])
        patches = []
        for value in values:
            try:
                patch = Patch.from_value(value)
            except StepFailed:  # the build's source step failed on it and said why
                continue
            if patch is not None:
                patches.append({"body": patch.body, "level": patch.level, "subdir": patch.subdir})
        return patches

    def _logs(self, build: dict) -> list[dict]:
        """The logs ``add_logs`` names (True: all), with their text."""
        if not self.add_logs:
            return []
        wanted = None if self.add_logs is True else set(self.add_logs)
        return [log for step in build.get("steps") or [] for log in step.get("logs") or []
                if wanted is None or log["name"] in wanted or f"{step['name']}.{log['name']}" in wanted]

    def want(self) -> dict:
        """What the build dict must hold for this generator."""
        f = self.formatter
        return {"want_properties": True, "want_steps": f.want_steps or bool(self.add_logs),
                "want_logs": f.want_logs or bool(self.add_logs),
                "want_logs_content": f.want_logs_content or bool(self.add_logs),
                "want_previous": True}  # the modes and ``status_detected`` read prev_build


@implementer(IReportGenerator)
class BuildStatusGenerator(BuildGeneratorBase):
    """A report when a build ends with results ``mode`` names (see ``expand_mode``)."""

    def __init__(self, mode=DEFAULT_MODE, tags=None, builders=None, schedulers=None, branches=None,
                 subject=None, add_logs=None, add_patch=False, report_new=False, message_formatter=None):
        super().__init__(tags, builders, schedulers, branches, subject or DEFAULT_SUBJECT, add_logs,
                         add_patch, message_formatter)
        self.mode = expand_mode(mode)
        self.report_new = report_new
        self.wanted_event_kinds = (BUILD_STARTED, BUILD_FINISHED) if report_new else (BUILD_FINISHED,)

    async def generate(self, master, reporter, kind: str, build: dict) -> dict | None:
        if kind not in self.wanted_event_kinds or not self.build_wanted(build):
            return None
        if kind == BUILD_FINISHED:
            previous = build.get("prev_build")
            if not results_wanted(self.mode, build["results"], previous["results"] if previous else None):
                return None
        return await self.build_message(master, build, self.mode)

    async def generate_missing(self, master, reporter, slave):
        return None


@implementer(IReportGenerator)
class BuildStartEndStatusGenerator(BuildGeneratorBase):
    """A report when a build starts (``start_formatter``) and when it ends (``end_formatter``)."""

    wanted_event_kinds = (BUILD_STARTED, BUILD_FINISHED)

    def __init__(self, tags=None, builders=None, schedulers=None, branches=None, add_logs=None,
                 add_patch=False, start_formatter=None, end_formatter=None):
        super().__init__(tags, builders, schedulers, branches, None, add_logs, add_patch,
                         end_formatter)
        self.start_formatter = start_formatter or MessageFormatterRenderable("Build started.")
        self.end_formatter = end_formatter or MessageFormatterRenderable("Build done.")
        self.formatter = self.end_formatter

    def want(self) -> dict:
        want = super().want()
        f = self.start_formatter
        want["want_steps"] = want["want_steps"] or f.want_steps
        want["want_logs"] = want["want_logs"] or f.want_logs
        return want

    async def generate(self, master, reporter, kind: str, build: dict) -> dict | None:
        if kind not in self.wanted_event_kinds or not self.build_wanted(build):
            return None
        formatter = self.start_formatter if kind == BUILD_STARTED else self.end_formatter
        return await self.build_message(master, build, formatter=formatter)

    async def generate_missing(self, master, reporter, slave):
        return None
