"""The task model (master/tasks/model.py): Swarming v1 JSON in and out, validation with
Swarming's limits (one message per problem, naming the field), states, the properties hash."""

import base64
import hashlib
import json

import pytest

from buildfarm.master.tasks import model
from buildfarm.master.tasks.model import State, TaskValidationError


def _body(**properties) -> dict:
    """A tasks/new body as swarming.py (2020) sends it: int64 as numbers, unset as null."""
    props = {
        "command": ["python3", "-c", "print(1)"], "relative_cwd": None,
        "dimensions": [{"key": "pool", "value": "ci"}, {"key": "os", "value": "Linux"}],
        "env": [{"key": "A", "value": "1"}], "env_prefixes": [{"key": "PATH", "value": ["bin"]}],
        "caches": [], "cipd_input": None, "containment": {"containment_type": "NONE"},
        "execution_timeout_secs": 3600, "grace_period_secs": 30, "idempotent": False,
        "io_timeout_secs": 1200, "outputs": [], "inputs_ref": None, "secret_bytes": None,
    }
    props.update(properties)
    return {"name": "hello", "parent_task_id": "", "priority": 200, "realm": None,
            "request_uuid": "4c3f0bd4-5a4e-4f0e-9b0f-0d6d1b0a9e11", "resultdb": {"enable": False},
            "pool_task_template": "AUTO", "tags": ["purpose:test"], "user": None,
            "task_slices": [{"expiration_secs": 21600, "wait_for_capacity": False, "properties": props}]}


def _problems(body) -> list[str]:
    with pytest.raises(TaskValidationError) as raised:
        model.request_from_json(body)
    return raised.value.problems


def test_a_request_from_the_swarming_client_is_parsed():
    request = model.request_from_json(_body())
    assert (request.name, request.user, request.priority, request.tags) == (
        "hello", None, 200, ("purpose:test",))
    assert request.request_uuid == "4c3f0bd4-5a4e-4f0e-9b0f-0d6d1b0a9e11" and request.parent_task_id is None
    (task_slice,) = request.task_slices
    props = task_slice.properties
    assert task_slice.expiration_secs == 21600 and not task_slice.wait_for_capacity
    assert props.command == ("python3", "-c", "print(1)")
    assert props.dimensions_dict() == {"os": ["Linux"], "pool": ["ci"]} and props.pool == "ci"
    assert props.env == (("A", "1"),) and props.env_prefixes == (("PATH", ("bin",)),)
    assert (props.execution_timeout_secs, props.io_timeout_secs, props.grace_period_secs) == (3600, 1200, 30)


def test_int64_fields_may_be_strings_as_cloud_endpoints_sent_them():
    body = _body(execution_timeout_secs="60", io_timeout_secs="0")
    body["priority"] = "25"
    body["task_slices"][0]["expiration_secs"] = "300"
    request = model.request_from_json(body)
    assert request.priority == 25 and request.task_slices[0].expiration_secs == 300
    assert request.task_slices[0].properties.execution_timeout_secs == 60


def test_the_old_form_with_properties_at_the_top_is_one_slice():
    body = _body()
    props = body.pop("task_slices")[0]["properties"]
    request = model.request_from_json({**body, "properties": props, "expiration_secs": "600"})
    assert len(request.task_slices) == 1 and request.task_slices[0].expiration_secs == 600


def test_a_request_goes_back_to_json_with_int64_as_strings_and_parses_the_same():
    body = _body(secret_bytes=base64.b64encode(b"s3cret").decode(), idempotent=True,
                 inputs_ref={"isolated": "a" * 40, "isolatedserver": "http://127.0.0.1:1",
                             "namespace": "default-gzip"},
                 command=None, caches=[{"name": "git", "path": "cache/git"}])
    request = model.request_from_json(body)
    shown = model.request_to_json(request)
    assert shown["priority"] == "200" and shown["expiration_secs"] == "21600"
    props = shown["task_slices"][0]["properties"]
    assert props["execution_timeout_secs"] == "3600" and props["secret_bytes"] == "<REDACTED>"
    assert props["dimensions"] == [{"key": "os", "value": "Linux"}, {"key": "pool", "value": "ci"}]
    stored = model.request_to_storage(request)
    assert "s3cret" not in json.dumps(stored)
    assert model.request_from_storage(json.loads(json.dumps(stored)), {0: b"s3cret"}) == request


def test_several_problems_are_all_reported_each_naming_its_field():
    body = _body(execution_timeout_secs=10, io_timeout_secs=5, grace_period_secs=4000,
                 relative_cwd="../up", env=[{"key": "1BAD", "value": "x"}])
    body["priority"] = 300
    body["task_slices"][0]["expiration_secs"] = 10
    problems = _problems(body)
    assert [p.split(" ")[0] for p in problems] == [
        "priority", "expiration_secs", "properties.relative_cwd:", "properties.env:",
        "properties.execution_timeout_secs", "properties.io_timeout_secs", "properties.grace_period_secs"]


@pytest.mark.parametrize("dimensions, expected", [
    ([{"key": "os", "value": "Linux"}], "properties.dimensions: pool is required"),
    ([{"key": "pool", "value": "a"}, {"key": "pool", "value": "b"}],
     "properties.dimensions: pool must have one value, not 2"),
    ([{"key": "pool", "value": "a"}, {"key": "id", "value": "s1"}, {"key": "id", "value": "s2"}],
     "properties.dimensions: id must have one value, not 2"),
    ([{"key": "pool", "value": "a|b"}], "properties.dimensions: pool must be one pool, not alternatives"),
    ([{"key": "pool", "value": "ci"}, {"key": "a", "value": "1|2"}, {"key": "b", "value": "1|2"},
      {"key": "c", "value": "1|2|3"}],
     "properties.dimensions: the alternatives (a|b) expand to 12 combinations; at most 8"),
    ([{"key": "pool", "value": "ci"}] + [{"key": f"k{i}", "value": "v"} for i in range(32)],
     "properties.dimensions: at most 32 keys, not 33"),
    ([{"key": "pool", "value": "ci"}] + [{"key": "k", "value": f"v{i}"} for i in range(17)],
     "properties.dimensions: k: at most 16 values, not 17"),
    ([{"key": "pool", "value": "ci"}, {"key": "os", "value": "a||b"}],
     "properties.dimensions: os: 'a||b' has an empty or padded alternative"),
    ([{"key": "pool", "value": "ci"}, {"key": "9x", "value": "1"}],
     "properties.dimensions: key '9x' must be 1 to 64 of [a-zA-Z0-9_.-], not starting with a digit"),
])
def test_dimensions_follow_swarmings_rules(dimensions, expected):
    assert _problems(_body(dimensions=dimensions)) == [expected]


def test_eight_combinations_of_alternatives_are_allowed():
    dims = [{"key": "pool", "value": "ci"}, {"key": "a", "value": "1|2"}, {"key": "b", "value": "1|2"},
            {"key": "c", "value": "1|2"}]
    assert model.request_from_json(_body(dimensions=dims))


@pytest.mark.parametrize("properties, expected", [
    ({"command": ["x"] * 129}, "properties.command: at most 128 arguments, not 129"),
    ({"command": None}, "properties.command: a command or inputs_ref.isolated is required"),
    ({"relative_cwd": "/abs"}, "properties.relative_cwd: must be a relative path with / separators"),
    ({"env": [{"key": "A", "value": "x" * 1025}]}, "properties.env: A: a value is over 1024 characters"),
    ({"env": [{"key": f"K{i}", "value": "v"} for i in range(65)]}, "properties.env: at most 64 keys, not 65"),
    ({"env": [{"key": "A B", "value": "v"}]}, "properties.env: key 'A B' must match [A-Za-z_][A-Za-z0-9_]*"),
    ({"caches": [{"name": "Git", "path": "g"}]},
     "properties.caches: name 'Git' must be 1 to 128 of [a-z0-9_]"),
    ({"outputs": ["../x"]}, "properties.outputs: '../x': must not contain '..'"),
    ({"secret_bytes": base64.b64encode(b"x" * 20481).decode()},
     "properties.secret_bytes: at most 20480 bytes, not 20481"),
    ({"inputs_ref": {"isolated": "nothex"}},
     "properties.inputs_ref.isolated must be a hex digest, not 'nothex'"),
    ({"io_timeout_secs": "many"},
     'properties.io_timeout_secs must be an integer (a number or a string of digits), not "many"'),
    ({"secret_bytes": "not base64!"}, "properties.secret_bytes must be base64 text"),
    ({"secret_bytes": 12}, "properties.secret_bytes must be base64 text"),
    ({"dimensions": "pool:ci"},
     'properties.dimensions must be a list of {key, value: string}, not "pool:ci"'),
])
def test_properties_follow_swarmings_limits(properties, expected):
    assert _problems(_body(**properties)) == [expected]


def test_a_problem_of_a_later_slice_names_the_slice():
    body = _body()
    second = json.loads(json.dumps(body["task_slices"][0]))
    second["properties"]["execution_timeout_secs"] = 1
    body["task_slices"].append(second)
    assert _problems(body) == ["task_slices[1].properties.execution_timeout_secs must be 30..259200 "
                               "(30 s to 3 days), not 1"]


def test_a_body_that_is_not_an_object_or_has_no_slice_is_refused():
    assert _problems([]) == ["the request must be a JSON object"]
    assert _problems({"name": "x"}) == ["task_slices: at least one slice is required"]


def test_the_properties_hash_is_sha256_of_the_canonical_properties_then_the_secret():
    props = model.request_from_json(_body()).task_slices[0].properties
    canonical = json.dumps(props.canonical(), sort_keys=True, separators=(",", ":")).encode()
    assert props.properties_hash() == hashlib.sha256(canonical).hexdigest()
    with_secret = _body(secret_bytes=base64.b64encode(b"k").decode())
    secret = model.request_from_json(with_secret).task_slices[0].properties
    assert secret.properties_hash() == hashlib.sha256(canonical + b"k").hexdigest()


def test_equivalent_properties_hash_the_same():
    first = _body(dimensions=[{"key": "pool", "value": "ci"}, {"key": "os", "value": "Linux|Mac"}],
                  env=[{"key": "A", "value": "1"}, {"key": "B", "value": "2"}], outputs=["b", "a"])
    second = _body(dimensions=[{"key": "os", "value": "Mac|Linux"}, {"key": "pool", "value": "ci"}],
                   env=[{"key": "B", "value": "2"}, {"key": "A", "value": "1"}], outputs=["a", "b"])
    hashes = [model.request_from_json(b).task_slices[0].properties.properties_hash() for b in (first, second)]
    assert hashes[0] == hashes[1]


@pytest.mark.parametrize("change", [
    {"command": ["python3", "-c", "print(2)"]}, {"env": [{"key": "A", "value": "2"}]},
    {"dimensions": [{"key": "pool", "value": "ci"}]}, {"execution_timeout_secs": 60},
    {"idempotent": True}, {"secret_bytes": base64.b64encode(b"other").decode()},
    {"caches": [{"name": "c", "path": "c"}]}, {"outputs": ["out"]}, {"relative_cwd": "sub"},
])
def test_whatever_can_change_the_output_changes_the_hash(change):
    base = model.request_from_json(_body()).task_slices[0].properties.properties_hash()
    assert model.request_from_json(_body(**change)).task_slices[0].properties.properties_hash() != base


def test_metadata_outside_the_properties_does_not_change_the_hash():
    body = _body()
    other = _body()
    other.update(name="other", priority=10, tags=["a:b"], user="u")
    other["task_slices"][0]["expiration_secs"] = 60
    assert model.request_from_json(body).task_slices[0].properties.properties_hash() == \
        model.request_from_json(other).task_slices[0].properties.properties_hash()


def test_final_states_and_failures():
    assert {s for s in State if not s.is_final} == {State.PENDING, State.RUNNING}
    assert not model.is_failure(State.COMPLETED, 0)
    assert model.is_failure(State.COMPLETED, 1)
    assert all(model.is_failure(s, 0) for s in State if s.is_final and s is not State.COMPLETED)
    assert not model.is_failure(State.RUNNING, None)
    assert [s for s in State if s.is_internal_failure] == [State.BOT_DIED]


def test_a_stored_request_is_read_back_even_if_the_limits_changed_since():
    stored = model.request_to_storage(model.request_from_json(_body()))
    stored["task_slices"][0]["properties"]["execution_timeout_secs"] = "1"  # below today's limit
    request = model.request_from_storage(stored)
    assert request.task_slices[0].properties.execution_timeout_secs == 1
