"""c['tasks'] validated into TaskSettings (master/tasks/settings.py), checked by load_config,
and the least timeout it sets applied to the requests tasks/new accepts."""

import pytest

from buildfarm.master.config import ConfigErrors, load_config
from buildfarm.master.tasks.model import TaskValidationError, request_from_json
from buildfarm.master.tasks.settings import DEFAULT_MIN_TIMEOUT_S, TaskSettings, validate_tasks_config
from fixtures.docexamples import example


def body(seconds: int) -> dict:
    return {"name": "t", "task_slices": [{"expiration_secs": seconds, "properties": {
        "command": ["true"], "dimensions": [{"key": "pool", "value": "ci"}],
        "execution_timeout_secs": seconds, "io_timeout_secs": seconds, "grace_period_secs": 0}}]}


def test_without_a_tasks_section_a_request_asks_at_least_30_seconds():
    assert validate_tasks_config({}) == (TaskSettings(DEFAULT_MIN_TIMEOUT_S), [])
    with pytest.raises(TaskValidationError) as refused:
        request_from_json(body(29))
    assert len(refused.value.problems) == 3  # expiration, hard and I/O timeouts
    assert "expiration_secs must be 30..604800 (30 s to 7 days)" in str(refused.value)
    assert request_from_json(body(30)).task_slices[0].expiration_secs == 30


def test_a_lower_least_timeout_lets_a_request_ask_down_to_it():
    settings, problems = validate_tasks_config({"tasks": {"min_timeout_secs": 1}})
    assert problems == [] and settings.min_timeout_secs == 1
    request = request_from_json(body(1), settings.min_timeout_secs)
    props = request.task_slices[0].properties
    timeouts = (request.task_slices[0].expiration_secs, props.execution_timeout_secs, props.io_timeout_secs)
    assert timeouts == (1, 1, 1)
    with pytest.raises(TaskValidationError, match="execution_timeout_secs must be 1..259200"):
        request_from_json(body(0), settings.min_timeout_secs)


@pytest.mark.parametrize("tasks, message", [
    ([], "must be a dict"),
    ({"bogus": 1}, "unknown c['tasks'] key 'bogus'"),
    ({"min_timeout_secs": 0}, "min_timeout_secs"),
    ({"min_timeout_secs": 31}, "min_timeout_secs"),
    ({"min_timeout_secs": 1.5}, "min_timeout_secs"),
    ({"min_timeout_secs": True}, "min_timeout_secs"),
])
def test_a_bad_tasks_section_is_refused_with_the_reason(tasks, message):
    settings, problems = validate_tasks_config({"tasks": tasks})
    assert any(message in text for _, text in problems), problems
    assert settings.min_timeout_secs == DEFAULT_MIN_TIMEOUT_S


def test_load_config_reads_and_checks_c_tasks(tmp_path):
    cfg = tmp_path / "master.cfg"
    cfg.write_text("c = BuildmasterConfig = {}\n" + example("tasks.md", "tasks-settings"))
    assert load_config(str(cfg)).tasks.min_timeout_secs == 1
    cfg.write_text("c = BuildmasterConfig = {}\nc['tasks'] = {'min_timeout_secs': 0}\n")
    with pytest.raises(ConfigErrors, match="min_timeout_secs"):
        load_config(str(cfg))


def test_the_docs_quarantine_example_loads(tmp_path):
    cfg = tmp_path / "master.cfg"
    cfg.write_text("c = BuildmasterConfig = {}\n" + example("tasks.md", "tasks-quarantine"))
    tasks = load_config(str(cfg)).tasks
    assert tasks.quarantine_below_free_mb == 2048
    assert tasks.quarantined == (("bs7", "fan broken, ticket 1234"),)
