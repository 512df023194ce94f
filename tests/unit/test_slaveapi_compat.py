"""compat.py: the original SlaveAPI's values and names, as pure functions."""

import pytest

from buildfarm.master.fleet import ActionState
from buildfarm.master.slaveapi.compat import (
    BadFilter,
    SlaveFilters,
    colo_of,
    domain_of,
    original_text,
    parse_truth,
    split_arguments,
)
from buildfarm.master.slaveapi.results import ActionResult

CREATED = {"instance_id": "i-1", "name": "bs1", "state": "running", "private_ip": "10.0.0.9",
           "tags": {"Name": "bs1", "owner": "me@example.com"}}


@pytest.mark.parametrize(("action", "data", "text"), [
    ("buildslave_uptime", {"uptime": 86400}, 86400),
    ("buildslave_last_activity", {"last_state": "ready", "last_activity_seconds": 5, "uptime": 9},
     {"last_state": "ready", "last_activity_seconds": 5, "uptime": 9}),
    ("aws_create_instance", CREATED, {"Name": "bs1", "owner": "me@example.com", "ip": "10.0.0.9"}),
    ("reboot", None, "the story"),
    ("aws_stop_instance", CREATED, "the story"),
])
def test_a_success_answers_the_original_text(action, data, text):
    assert original_text(action, ActionState.SUCCESS, "the story", data) == text


@pytest.mark.parametrize("state", [ActionState.RUNNING, ActionState.FAILURE])
def test_unfinished_and_failed_results_answer_the_story(state):
    assert original_text("buildslave_uptime", state, "the story", {"uptime": 5}) == "the story"


def test_a_result_dict_keeps_the_story_and_the_data_beside_the_text():
    result = ActionResult(7, "bs1", "buildslave_uptime", ActionState.SUCCESS, text="up for 5 s",
                          data={"uptime": 5})
    answer = result.to_dict()
    assert (answer["text"], answer["story"], answer["data"]) == (5, "up for 5 s", {"uptime": 5})


@pytest.mark.parametrize(("value", "truth"), [
    ("y", True), ("YES", True), ("1", True), ("True", True), (True, True),
    ("n", False), ("No", False), ("0", False), ("false", False), ("", False), (False, False),
])
def test_every_spelling_of_truth_the_original_took(value, truth):
    assert parse_truth(value) is truth


def test_other_words_are_not_truth():
    with pytest.raises(ValueError, match="not 'perhaps'"):
        parse_truth("perhaps")


def test_unknown_arguments_are_split_off_sorted():
    assert split_arguments({"reason", "force"}, {"reason": "r", "zz": 1, "colour": "red"}) == (
        {"reason": "r"}, ["colour", "zz"])


def test_domain_and_colo_of_an_fqdn():
    assert (domain_of("bs1.build.scl3.example.com"), colo_of("bs1.build.scl3.example.com")) == (
        "build.scl3.example.com", "scl3")
    assert (domain_of("bs1"), colo_of("bs1.example.com"), colo_of(None)) == (None, None, None)


def test_filters_match_every_filter_and_any_value_of_each():
    filters = SlaveFilters.from_args({b"purpose": [b"build", b"try"], b"enabled": [b"y"]})
    assert filters.match({"purpose": "try", "enabled": True})
    assert not filters.match({"purpose": "tests", "enabled": True})
    assert not filters.match({"purpose": "build", "enabled": False})
    assert SlaveFilters.from_args({b"environ": [b"prod"]}).environment == {"prod"}
    assert SlaveFilters.from_args({b"enabled": [b""]}).enabled is None


def test_a_filter_it_cannot_use_is_refused_naming_it():
    with pytest.raises(BadFilter, match="^enabled: "):
        SlaveFilters.from_args({b"enabled": [b"perhaps"]})
    with pytest.raises(BadFilter, match="^enabled: give it once"):
        SlaveFilters.from_args({b"enabled": [b"0", b"1"]})
