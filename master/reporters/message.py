"""Message formatters (Buildbot's ``reporters.message``): the text of a report.

``MessageFormatter`` renders Jinja2 templates (``template``, ``subject``) in a sandboxed
environment with Buildbot 4's context variables (``build_context``); ``template_type``
"html" also escapes the variables.  ``MessageFormatterMissingWorker`` renders the report
of a slave gone missing.  ``MessageFormatterFunction`` calls a function of the context,
``MessageFormatterRenderable`` renders a renderable (``util.Interpolate``) with the
build's properties, ``MessageFormatterEmpty`` sends no text.

The default templates say what Buildbot's say, in buildfarm's words.
"""

from collections.abc import Callable
from typing import Any

from jinja2.sandbox import SandboxedEnvironment
from zope.interface import implementer

from buildfarm.common.results import (
    CANCELLED,
    EXCEPTION,
    FAILURE,
    RESULT_NAMES,
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
)
from buildfarm.master.process.properties import Properties
from buildfarm.master.reporters.interfaces import IMessageFormatter, IReporterMaster
from buildfarm.master.reporters.utils import buildbot_url, url_for_build

TEMPLATE_TYPES = ("plain", "html", "json")

DEFAULT_BODY_PLAIN = """\
Builder {{ buildername }} ({{ projects }}): {{ status_detected }}.

Build page:
    {{ build_url }}

State: {{ build['state_string'] }}
Revision: {{ build['properties'].get('got_revision', ['(unknown)'])[0] }}
Slave: {{ workername }}
Reason: {{ build['properties'].get('reason', ['(unknown)'])[0] }}
Blamelist: {{ ', '.join(blamelist) }}

Steps:
{% for step in build.get('steps') or [] %}\
- {{ step['number'] }}: {{ step['name'] }} ({{ statusToString(step['results']) }})
{% for log in step.get('logs') or [] %}\
    log {{ log['name'] }}: {{ log['url'] }}
{% endfor %}\
{% else %}\
- (none)
{% endfor %}"""

DEFAULT_BODY_HTML = """\
<p>Builder <a href="{{ build_url }}">{{ buildername }}</a> ({{ projects }}): {{ status_detected }}.</p>
<ul>
  <li>State: {{ build['state_string'] }}</li>
  <li>Revision: {{ build['properties'].get('got_revision', ['(unknown)'])[0] }}</li>
  <li>Slave: {{ workername }}</li>
  <li>Reason: {{ build['properties'].get('reason', ['(unknown)'])[0] }}</li>
  <li>Blamelist: {{ ', '.join(blamelist) }}</li>
</ul>
<p>Steps:</p>
<ul>
{% for step in build.get('steps') or [] %}\
  <li style="{{ results_style.get(step['results'], '') }}">{{ step['number'] }}: {{ step['name'] }} \
({{ statusToString(step['results']) }})\
{% for log in step.get('logs') or [] %} <a href="{{ log['url'] }}">{{ log['name'] }}</a>{% endfor %}</li>
{% else %}\
  <li>(none)</li>
{% endfor %}\
</ul>
"""

DEFAULT_SUBJECT = (
    "{{ '☠' if result_names[results] == 'failure' else '☺' if result_names[results] == 'success' else '☝' }} "
    "buildfarm ({{ buildbot_title }}): {{ buildername }} - {{ build['state_string'] }} "
    "({{ build['properties'].get('branch', [None])[0] or "
    "build['properties'].get('got_revision', ['(unknown revision)'])[0] }})"
)

DEFAULT_MISSING_BODY_PLAIN = """\
Slave {{ worker.name }} of {{ buildbot_title }} has gone away.

It has been gone since {{ worker.last_connection }}.
{% if worker.workerinfo.get('admin') %}
Its admin (as the slave reports it) is {{ worker.workerinfo.admin }}.
{% endif %}"""

DEFAULT_MISSING_BODY_HTML = """\
<p>Slave {{ worker.name }} of {{ buildbot_title }} has gone away.</p>
<p>It has been gone since {{ worker.last_connection }}.</p>
{% if worker.workerinfo.get('admin') %}
<p>Its admin (as the slave reports it) is {{ worker.workerinfo.admin }}.</p>
{% endif %}"""

DEFAULT_MISSING_SUBJECT = "buildfarm {{ buildbot_title }}: slave {{ worker.name }} missing"

RESULTS_STYLE = {
    SUCCESS: "",
    WARNINGS: "color: #f80;",
    FAILURE: "color: #f00; font-weight: bold;",
    SKIPPED: "color: #4af;",
    EXCEPTION: "color: #f0f; font-weight: bold;",
    RETRY: "color: #4af;",
    CANCELLED: "color: #4af;",
}


def status_to_string(results: int | None) -> str:
    """Buildbot's ``statusToString``: a result's name ("not finished" for None)."""
    if results is None:
        return "not finished"
    return RESULT_NAMES[results] if 0 <= results < len(RESULT_NAMES) else f"invalid result {results}"


def detected_status(mode, results, previous_results) -> str:
    """What the report says happened (``status_detected``)."""
    if results == FAILURE:
        new = ("change" in mode or "problem" in mode) and previous_results not in (None, FAILURE)
        return "new failure" if new else "failed build"
    if results == WARNINGS:
        return "problem in the build"
    if results == SUCCESS:
        restored = "change" in mode and previous_results not in (None, SUCCESS)
        return "restored build" if restored else "passing build"
    if results == EXCEPTION:
        return "build exception"
    return f"{status_to_string(results)} build"


def summary_text(build: dict, results) -> str:
    """One line on the build's outcome (``summary``)."""
    state = f": {build['state_string']}" if build.get("state_string") else ""
    if results == SUCCESS:
        return "Build succeeded!"
    if results == WARNINGS:
        return f"Build Had Warnings{state}"
    if results == CANCELLED:
        return "Build was cancelled"
    return f"BUILD FAILED{state}"


def sourcestamps_text(sourcestamps: list[dict]) -> str:
    """One line per source stamp (``sourcestamps``)."""
    lines = []
    for ss in sourcestamps:
        source = f"[branch {ss['branch']}] " if ss.get("branch") else ""
        source += str(ss["revision"]) if ss.get("revision") else "HEAD"
        if ss.get("patch") is not None:
            source += " (plus patch)"
        codebase = f" '{ss['codebase']}'" if ss.get("codebase") else ""
        lines.append(f"Build Source Stamp{codebase}: {source}\n")
    return "".join(lines)


def projects_text(sourcestamps: list[dict], master: IReporterMaster) -> str:
    projects = sorted({ss["project"] for ss in sourcestamps if ss.get("project")})
    return ", ".join(projects) if projects else master.config.title


def build_context(master: IReporterMaster, build: dict, mode=(), users=(), is_buildset=False) -> dict:
    """Buildbot 4's template variables for a build report."""
    sourcestamps = build["buildset"]["sourcestamps"]
    previous = build.get("prev_build")
    previous_results = previous["results"] if previous else None
    results = build["results"]
    return {
        "results": results,
        "result_names": list(RESULT_NAMES),
        "mode": mode,
        "buildername": build["builder"]["name"],
        "workername": build["properties"].get("workername", ["<unknown>"])[0],
        "buildset": build["buildset"],
        "build": build,
        "is_buildset": is_buildset,
        "projects": projects_text(sourcestamps, master),
        "previous_results": previous_results,
        "status_detected": detected_status(mode, results, previous_results),
        "build_url": url_for_build(master, build["buildid"]),
        "buildbot_title": master.config.title,
        "buildbot_url": buildbot_url(master),
        "blamelist": list(users),
        "summary": summary_text(build, results),
        "sourcestamps": sourcestamps_text(sourcestamps),
        "statusToString": status_to_string,
    }


def worker_context(master: IReporterMaster, worker: dict) -> dict:
    """The template variables of a missing slave's report."""
    return {"buildbot_title": master.config.title, "buildbot_url": buildbot_url(master),
            "worker": worker}


class MessageFormatterBase:
    """What every formatter shares: the extra context ``ctx`` and what the build dict needs."""

    template_type = "plain"

    def __init__(self, ctx: dict | None = None, want_properties: bool = True, want_steps: bool = False,
                 want_logs: bool = False, want_logs_content: bool = False, extra_info_cb=None):
        self.context = dict(ctx or {})
        self.want_properties = want_properties
        self.want_steps = want_steps
        self.want_logs = want_logs or want_logs_content
        self.want_logs_content = want_logs_content
        self.extra_info_cb = extra_info_cb

    async def format_message_for_build(self, master, build, mode=(), users=(), is_buildset=False) -> dict:
        return self.render_message_dict(build_context(master, build, mode, users, is_buildset))

    def render_message_dict(self, context: dict) -> dict:
        """``{"body", "type", "subject", "extra_info"}`` rendered from ``context``."""
        self.add_context(context)
        context.update(self.context)
        return {
            "body": self.render_body(context),
            "type": self.template_type,
            "subject": self.render_subject(context),
            "extra_info": self.extra_info_cb(context) if self.extra_info_cb else None,
        }

    def add_context(self, context: dict) -> None:
        """Variables a formatter adds to Buildbot's."""

    def render_body(self, context: dict):
        return None

    def render_subject(self, context: dict):
        return None


def _check_template_type(owner: str, template_type: str) -> None:
    if template_type not in ("plain", "html"):
        raise ValueError(f"{owner}: template_type must be 'plain' or 'html', not {template_type!r}")


class _JinjaFormatter(MessageFormatterBase):
    def __init__(self, template: str, subject: str, template_type: str, **kwargs):
        super().__init__(**kwargs)
        self.template_type = template_type
        env = SandboxedEnvironment(autoescape=template_type == "html", keep_trailing_newline=True)
        self.body_template = env.from_string(template)
        self.subject_template = env.from_string(subject)

    def render_body(self, context: dict) -> str:
        return self.body_template.render(context)

    def render_subject(self, context: dict) -> str:
        return self.subject_template.render(context)


@implementer(IMessageFormatter)
class MessageFormatter(_JinjaFormatter):
    """Jinja2 ``template`` and ``subject`` (Buildbot's defaults when None); the default body
    lists the steps and their logs, so it asks for them."""

    def __init__(self, template: str | None = None, subject: str | None = None,
                 template_type: str | None = None, **kwargs):
        template_type = template_type or "plain"
        _check_template_type("MessageFormatter", template_type)
        self.uses_default_body_template = template is None
        if template is None:
            template = DEFAULT_BODY_PLAIN if template_type == "plain" else DEFAULT_BODY_HTML
            kwargs["want_steps"] = kwargs["want_logs"] = True
        super().__init__(template, subject or DEFAULT_SUBJECT, template_type, **kwargs)

    def add_context(self, context: dict) -> None:
        if self.uses_default_body_template:
            context["results_style"] = RESULTS_STYLE


@implementer(IMessageFormatter)
class MessageFormatterMissingWorker(_JinjaFormatter):
    """The report of a slave gone missing; variables ``worker`` (``name``, ``workerinfo``,
    ``last_connection``, ``notify``), ``buildbot_title``, ``buildbot_url``."""

    def __init__(self, template: str | None = None, subject: str | None = None,
                 template_type: str | None = None, **kwargs):
        template_type = template_type or "plain"
        _check_template_type("MessageFormatterMissingWorker", template_type)
        if template is None:
            template = DEFAULT_MISSING_BODY_PLAIN if template_type == "plain" else DEFAULT_MISSING_BODY_HTML
        super().__init__(template, subject or DEFAULT_MISSING_SUBJECT, template_type, **kwargs)

    async def format_message_for_worker(self, master, worker: dict) -> dict:
        return self.render_message_dict(worker_context(master, worker))


@implementer(IMessageFormatter)
class MessageFormatterFunction(MessageFormatterBase):
    """The body is ``function(context)``; ``template_type`` says what it is ("json": a
    JSON-able value)."""

    def __init__(self, function: Callable[[dict], Any], template_type: str, **kwargs):
        if template_type not in TEMPLATE_TYPES:
            raise ValueError(f"MessageFormatterFunction: template_type must be one of {TEMPLATE_TYPES}, "
                             f"not {template_type!r}")
        super().__init__(**kwargs)
        self.function = function
        self.template_type = template_type

    def render_body(self, context: dict):
        return self.function(context)


@implementer(IMessageFormatter)
class MessageFormatterRenderable(MessageFormatterBase):
    """``template`` and ``subject`` are renderables (``util.Interpolate``), rendered with the
    build's properties."""

    def __init__(self, template, subject=None):
        super().__init__()
        self.template = template
        self.subject = subject

    def render_body(self, context: dict):
        return _properties_of(context).render(self.template)

    def render_subject(self, context: dict):
        return None if self.subject is None else _properties_of(context).render(self.subject)


@implementer(IMessageFormatter)
class MessageFormatterEmpty(MessageFormatterBase):
    """No body and no subject."""


def _properties_of(context: dict) -> Properties:
    props = Properties()
    for name, (value, source) in context["build"]["properties"].items():
        props.setProperty(name, value, source)
    return props
