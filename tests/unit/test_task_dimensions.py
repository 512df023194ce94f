"""Dimensions (master/tasks/dimensions.py): a slave's dimensions from its report, its
info/dimensions.json and master.cfg; matching with a|b alternatives; the nearest slaves for
NO_RESOURCE; queue keys and the per-slave queue cache."""

import json

import pytest

from buildfarm.master.tasks import dimensions as d

LINUX = {"id": ["s1"], "pool": ["ci"], "os": ["Linux", "Debian", "Debian-12"], "cpu": ["x86", "x86-64"],
         "gpu": ["none"]}


def test_a_task_matches_when_every_pair_it_asks_is_present():
    assert d.matches({"pool": ["ci"], "os": ["Debian-12"]}, LINUX)
    assert d.matches({"pool": ["ci"], "os": ["Linux", "Debian"]}, LINUX)  # AND of two values of a key
    assert not d.matches({"pool": ["ci"], "os": ["Linux", "Mac"]}, LINUX)
    assert not d.matches({"pool": ["other"]}, LINUX)
    assert not d.matches({"pool": ["ci"], "tpu": ["v4"]}, LINUX)


def test_alternatives_match_any_of_their_values():
    assert d.matches({"pool": ["ci"], "os": ["Mac|Debian-12"]}, LINUX)
    assert not d.matches({"pool": ["ci"], "os": ["Mac|Windows"]}, LINUX)
    assert d.matches({"pool": ["ci"], "os": ["Mac|Linux"], "cpu": ["arm64|x86-64"]}, LINUX)


def test_alternatives_expand_into_the_cross_product():
    combos = d.expand({"pool": ["ci"], "os": ["b|a"], "cpu": ["x|y"]})
    assert [sorted(c) for c in combos] == [
        ["cpu:x", "os:a", "pool:ci"], ["cpu:x", "os:b", "pool:ci"],
        ["cpu:y", "os:a", "pool:ci"], ["cpu:y", "os:b", "pool:ci"]]


def test_more_than_eight_combinations_is_an_error():
    with pytest.raises(d.DimensionsError, match="expand to 9 combinations; at most 8"):
        d.normalize_task_dimensions({"pool": ["ci"], "a": ["1|2|3"], "b": ["1|2|3"]})


def test_the_queue_key_is_stable_and_the_same_for_equivalent_dimensions():
    key = d.queue_key({"pool": ["ci"], "os": ["Linux|Mac"]})
    assert key == d.queue_key({"os": ["Mac|Linux"], "pool": ["ci"]})
    assert key != d.queue_key({"pool": ["ci"], "os": ["Linux"]})
    assert len(key) == 16 and int(key, 16) >= 0


def test_the_nearest_slaves_and_what_they_lack():
    slaves = {
        "s1": LINUX,
        "s2": {"id": ["s2"], "pool": ["ci"], "os": ["Mac"], "cpu": ["arm64"]},
        "s3": {"id": ["s3"], "pool": ["other"], "os": ["Linux"]},
    }
    asked = {"pool": ["ci"], "os": ["Linux"], "gpu": ["nvidia|amd"]}
    near = d.nearest_slaves(asked, slaves, limit=2)
    assert near == [d.NearMiss("s1", ("gpu:amd",)), d.NearMiss("s2", ("gpu:amd", "os:Linux"))]
    message = d.describe_no_resource(asked, near)
    assert message == ("no slave could run a task with dimensions gpu:nvidia|amd, os:Linux, pool:ci; "
                       "nearest: s1 lacks gpu:amd; s2 lacks gpu:amd, os:Linux")
    assert "no slave was seen recently" in d.describe_no_resource(asked, [])


def test_reported_dimensions_from_what_a_slave_says_at_attach():
    info = {"os_family": "Linux", "os_id": "debian", "os_version_id": "12", "cpu": "x86_64",
            "python": "3.11.7", "system": "posix"}
    assert d.reported_dimensions(info) == {
        "os": ["Linux", "Debian", "Debian-12"], "cpu": ["x86", "x86-64"], "python": ["3", "3.11", "3.11.7"]}


def test_an_older_slave_or_stock_worker_reports_fewer_dimensions():
    assert d.reported_dimensions({"system": "posix", "os_id": "ubuntu", "os_version_id": "22.04"}) == {
        "os": ["Ubuntu", "Ubuntu-22.04"]}
    assert d.reported_dimensions({"system": "nt"}) == {"os": ["Windows"]}
    assert d.reported_dimensions({}) == {}


def test_merge_config_wins_over_the_file_which_wins_over_the_report_and_id_is_the_name():
    info = {"os_family": "Linux", "cpu": "aarch64", "python": "3.12.1",
            "dimensions": {"gpu": "nvidia", "cpu": ["arm64-v9"], "disk": ["ssd"]}}
    dims, warnings = d.slave_dimensions("s1", info, {"pool": "ci", "disk": ["nvme", "ssd"]})
    assert dims == {"cpu": ["arm64-v9"], "disk": ["nvme", "ssd"], "gpu": ["nvidia"], "id": ["s1"],
                    "os": ["Linux"], "pool": ["ci"], "python": ["3", "3.12", "3.12.1"]}
    assert warnings == []


def test_the_file_cannot_set_id_or_pool_and_bad_entries_are_dropped_with_a_warning():
    info = {"dimensions": {"id": "fake", "pool": "release", "gpu": "ok", "bad key": "x", "e": ""}}
    dims, warnings = d.slave_dimensions("s1", info, None)
    assert dims == {"gpu": ["ok"], "id": ["s1"]}
    assert warnings == [
        "info/dimensions.json: id is set by the master only; ignored",
        "info/dimensions.json: pool is set by the master only; ignored",
        "info/dimensions.json: key 'bad key' must be 1 to 64 of [a-zA-Z0-9_.-], not starting with a digit; "
        "ignored",
        "info/dimensions.json: e: value '' must be a string of 1 to 256 characters without leading or "
        "trailing spaces; ignored"]


def test_a_stock_worker_sends_the_file_as_text_and_bad_json_is_a_warning():
    dims, warnings = d.slave_dimensions("w1", {"dimensions.json": json.dumps({"gpu": ["a", "b"]})}, None)
    assert (dims, warnings) == ({"gpu": ["a", "b"], "id": ["w1"]}, [])
    dims, warnings = d.slave_dimensions("w1", {"dimensions.json": "{nope"}, None)
    assert dims == {"id": ["w1"]} and warnings[0].startswith("info/dimensions.json is not JSON")
    dims, warnings = d.slave_dimensions("w1", {"dimensions": ["gpu"]}, None)
    assert dims == {"id": ["w1"]} and "must hold a JSON object" in warnings[0]


@pytest.mark.parametrize("configured, expected", [
    ({"pool": "ci"}, []),
    ("pool:ci", ["dimensions must be a dict of {key: value or [values]}, not str"]),
    ({"pool": ["a", "b"]}, ["dimensions: pool must have one value, not 2"]),
    ({"id": "x"}, ["dimensions: id is always the slave's name and cannot be set"]),
    ({"gpu": "a|b"}, ["dimensions: gpu: 'a|b' must not contain '|' (only a task asks for alternatives)"]),
    ({"gpu": []}, ["dimensions: gpu: give a string or a non-empty list of strings"]),
    ({"gpu": [1]}, ["dimensions: gpu: value 1 must be a string of 1 to 256 characters without leading "
                    "or trailing spaces"]),
    ({f"k{i}": "v" for i in range(33)}, ["dimensions: at most 32 keys, not 33"]),
])
def test_configured_slave_dimensions_are_checked(configured, expected):
    assert d.slave_dimensions_problems(configured) == expected


def test_the_queue_cache_knows_which_queues_each_slave_serves():
    cache = d.QueueCache()
    cache.set_slave("s1", LINUX)
    cache.set_slave("s2", {"id": ["s2"], "pool": ["ci"], "os": ["Mac"]})
    linux = cache.add_queue({"pool": ["ci"], "os": ["Linux"]})
    either = cache.add_queue({"pool": ["ci"], "os": ["Linux|Mac"]})
    nobody = cache.add_queue({"pool": ["gpu"]})
    assert cache.queues_for("s1") == {linux, either}
    assert cache.queues_for("s2") == {either}
    assert cache.slaves_for(either) == ["s1", "s2"] and cache.slaves_for(nobody) == []
    assert cache.queues_for("unknown") == frozenset()


def test_a_slave_whose_dimensions_change_is_matched_again_and_only_then():
    cache = d.QueueCache()
    linux = cache.add_queue({"pool": ["ci"], "os": ["Linux"]})
    gpu = cache.add_queue({"pool": ["gpu"]})
    assert cache.set_slave("s1", LINUX)
    assert not cache.set_slave("s1", dict(reversed(list(LINUX.items()))))  # the same dimensions
    assert cache.queues_for("s1") == {linux}
    assert cache.set_slave("s1", {**LINUX, "pool": ["gpu"]})
    assert cache.queues_for("s1") == {gpu}


def test_removed_queues_and_slaves_are_forgotten():
    cache = d.QueueCache()
    cache.set_slave("s1", LINUX)
    key = cache.add_queue({"pool": ["ci"]})
    cache.remove_queue(key)
    assert cache.queues_for("s1") == frozenset()
    cache.add_queue({"pool": ["ci"]})
    cache.remove_slave("s1")
    assert cache.slaves_for(key) == []
