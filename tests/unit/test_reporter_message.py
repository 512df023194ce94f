"""Message formatters (master/reporters/message.py): Buildbot 4's template variables, the
default templates (plain and html), subjects, the sandbox, and the other formatters."""

import jinja2.exceptions
import pytest
import pytest_twisted
from zope.interface.verify import verifyObject

from buildfarm.common.results import CANCELLED, EXCEPTION, FAILURE, RETRY, SUCCESS, WARNINGS
from buildfarm.master.config import MasterConfig
from buildfarm.master.process.properties import Interpolate
from buildfarm.master.reporters.interfaces import IMessageFormatter
from buildfarm.master.reporters.message import (
    MessageFormatter,
    MessageFormatterEmpty,
    MessageFormatterFunction,
    MessageFormatterMissingWorker,
    MessageFormatterRenderable,
    build_context,
    detected_status,
)


class ConfiguredMaster:
    def __init__(self, buildbot_url="http://farm.example/", www_port="tcp:8010"):
        self.config = MasterConfig("master.cfg", title="Farm", buildbot_url=buildbot_url, www_port=www_port)
        self.masterid = 1


def build_dict(results=FAILURE, previous=SUCCESS) -> dict:
    return {
        "buildid": 7, "number": 3, "builderid": 2, "results": results, "state_string": "failed compile",
        "complete": True,
        "properties": {"workername": ["bs1", "Build"], "got_revision": ["abc123", "Build"],
                       "reason": ["forced", "Build"], "branch": ["main", "Build"]},
        "builder": {"builderid": 2, "name": "linux", "tags": []},
        "buildset": {"bsid": 1, "sourcestamps": [
            {"branch": "main", "revision": "abc123", "project": "widget", "codebase": "", "patch": None}]},
        "prev_build": None if previous is None else {"results": previous},
        "steps": [
            {"number": 0, "name": "checkout", "results": SUCCESS,
             "logs": [{"name": "stdio", "url": "http://farm.example/builds/7/steps/0/logs/stdio"}]},
            {"number": 1, "name": "compile", "results": FAILURE, "logs": []},
        ],
    }


VARIABLES = ["results", "result_names", "mode", "buildername", "workername", "buildset", "build",
             "is_buildset", "projects", "previous_results", "status_detected", "build_url",
             "buildbot_title", "buildbot_url", "blamelist", "summary", "sourcestamps", "statusToString"]


def test_the_context_has_every_buildbot_variable_with_its_value():
    build = build_dict()
    context = build_context(ConfiguredMaster(), build, mode=("problem",), users=["ann"])
    assert sorted(context) == sorted(VARIABLES)
    assert context["results"] == FAILURE
    assert context["result_names"][FAILURE] == "failure"
    assert context["mode"] == ("problem",)
    assert context["buildername"] == "linux"
    assert context["workername"] == "bs1"
    assert context["buildset"] is build["buildset"]
    assert context["build"] is build
    assert context["is_buildset"] is False
    assert context["projects"] == "widget"
    assert context["previous_results"] == SUCCESS
    assert context["status_detected"] == "new failure"
    assert context["build_url"] == "http://farm.example/builds/7"
    assert context["buildbot_title"] == "Farm"
    assert context["buildbot_url"] == "http://farm.example/"
    assert context["blamelist"] == ["ann"]
    assert context["summary"] == "BUILD FAILED: failed compile"
    assert context["sourcestamps"] == "Build Source Stamp: [branch main] abc123\n"
    assert context["statusToString"](WARNINGS) == "warnings"


def test_without_buildbot_url_the_links_use_the_web_port_on_localhost():
    context = build_context(ConfiguredMaster(buildbot_url=None), build_dict())
    assert context["buildbot_url"] == "http://localhost:8010/"
    assert context["build_url"] == "http://localhost:8010/builds/7"


def test_without_a_project_the_projects_are_the_title():
    build = build_dict()
    build["buildset"]["sourcestamps"][0]["project"] = ""
    assert build_context(ConfiguredMaster(), build)["projects"] == "Farm"


@pytest.mark.parametrize("results,previous,mode,text", [
    (FAILURE, SUCCESS, ("change",), "new failure"),
    (FAILURE, FAILURE, ("change",), "failed build"),
    (FAILURE, None, ("failing",), "failed build"),
    (WARNINGS, None, (), "problem in the build"),
    (SUCCESS, FAILURE, ("change",), "restored build"),
    (SUCCESS, FAILURE, ("passing",), "passing build"),
    (EXCEPTION, None, (), "build exception"),
    (CANCELLED, None, (), "cancelled build"),
    (RETRY, None, (), "retry build"),
])
def test_status_detected(results, previous, mode, text):
    assert detected_status(mode, results, previous) == text


@pytest_twisted.ensureDeferred
async def test_a_template_reads_any_variable():
    template = " | ".join("{{ %s }}" % v for v in ("buildername", "workername", "projects", "summary",
                                                     "status_detected", "build_url", "buildbot_title",
                                                     "previous_results", "results", "result_names[results]",
                                                     "build['properties']['reason'][0]", "statusToString(2)"))
    formatter = MessageFormatter(template=template, subject="{{ buildername }}: {{ summary }}")
    message = await formatter.format_message_for_build(ConfiguredMaster(), build_dict(), mode=("change",))
    assert message["body"] == ("linux | bs1 | widget | BUILD FAILED: failed compile | new failure | "
                               "http://farm.example/builds/7 | Farm | 0 | 2 | failure | forced | failure")
    assert message["subject"] == "linux: BUILD FAILED: failed compile"
    assert message["type"] == "plain"
    assert message["extra_info"] is None


@pytest_twisted.ensureDeferred
async def test_the_default_plain_template_lists_the_steps_and_their_logs():
    formatter = MessageFormatter()
    assert (formatter.want_steps, formatter.want_logs) == (True, True)
    message = await formatter.format_message_for_build(ConfiguredMaster(), build_dict(), mode=("change",))
    body = message["body"]
    assert "Builder linux (widget): new failure." in body
    assert "    http://farm.example/builds/7" in body
    assert "Revision: abc123" in body and "Slave: bs1" in body and "Reason: forced" in body
    assert "- 0: checkout (success)\n    log stdio: http://farm.example/builds/7/steps/0/logs/stdio\n" in body
    assert "- 1: compile (failure)" in body
    assert message["subject"] == "☠ buildfarm (Farm): linux - failed compile (main)"


@pytest_twisted.ensureDeferred
async def test_the_default_html_template_escapes_and_styles():
    build = build_dict()
    build["steps"][1]["name"] = "<compile>"
    message = await MessageFormatter(template_type="html").format_message_for_build(ConfiguredMaster(), build)
    assert message["type"] == "html"
    assert '<a href="http://farm.example/builds/7">linux</a>' in message["body"]
    assert "&lt;compile&gt;" in message["body"] and "<compile>" not in message["body"]
    assert 'style="color: #f00; font-weight: bold;"' in message["body"]


@pytest_twisted.ensureDeferred
async def test_the_extra_context_and_extra_info():
    formatter = MessageFormatter(template="{{ team }} {{ buildername }}", ctx={"team": "infra"},
                                 extra_info_cb=lambda context: {"github": {"n": context["build"]["number"]}})
    message = await formatter.format_message_for_build(ConfiguredMaster(), build_dict())
    assert message["body"] == "infra linux"
    assert message["extra_info"] == {"github": {"n": 3}}


@pytest_twisted.ensureDeferred
async def test_templates_run_in_a_sandbox():
    formatter = MessageFormatter(template="{{ build.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(jinja2.exceptions.SecurityError):
        await formatter.format_message_for_build(ConfiguredMaster(), build_dict())


def test_an_unknown_template_type_is_refused():
    with pytest.raises(ValueError, match="template_type must be 'plain' or 'html'"):
        MessageFormatter(template_type="markdown")


@pytest_twisted.ensureDeferred
async def test_function_renderable_and_empty_formatters():
    master, build = ConfiguredMaster(), build_dict()
    as_json = await MessageFormatterFunction(lambda c: {"id": c["build"]["buildid"]}, "json") \
        .format_message_for_build(master, build)
    assert (as_json["body"], as_json["type"], as_json["subject"]) == ({"id": 7}, "json", None)
    rendered = await MessageFormatterRenderable(Interpolate("%(prop:got_revision)s on %(prop:branch)s"),
                                                subject=Interpolate("rev %(prop:got_revision)s")) \
        .format_message_for_build(master, build)
    assert (rendered["body"], rendered["subject"]) == ("abc123 on main", "rev abc123")
    empty = await MessageFormatterEmpty().format_message_for_build(master, build)
    assert (empty["body"], empty["subject"]) == (None, None)


@pytest_twisted.ensureDeferred
async def test_missing_worker_formatter_variables():
    formatter = MessageFormatterMissingWorker(
        template=("{{ worker.name }} {{ worker.last_connection }} {{ worker.workerinfo.admin }} "
                  "{{ buildbot_url }}"),
        subject="{{ buildbot_title }}: {{ worker.name }}")
    worker = {"name": "bs1", "last_connection": "yesterday", "workerinfo": {"admin": "Ann"}, "notify": []}
    message = await formatter.format_message_for_worker(ConfiguredMaster(), worker)
    assert message["body"] == "bs1 yesterday Ann http://farm.example/"
    assert message["subject"] == "Farm: bs1"


@pytest_twisted.ensureDeferred
async def test_missing_worker_default_html_mentions_the_admin():
    worker = {"name": "bs1", "last_connection": "yesterday", "workerinfo": {"admin": "Ann <ann@x>"}}
    message = await MessageFormatterMissingWorker(template_type="html").format_message_for_worker(
        ConfiguredMaster(), worker)
    assert "<p>Slave bs1 of Farm has gone away.</p>" in message["body"]
    assert "Ann &lt;ann@x&gt;" in message["body"]


def test_formatters_provide_the_interface():
    for formatter in (MessageFormatter(), MessageFormatterMissingWorker(), MessageFormatterEmpty(),
                      MessageFormatterFunction(lambda c: None, "json"), MessageFormatterRenderable("x")):
        assert verifyObject(IMessageFormatter, formatter)
