"""buildfarm's exchanges (master/mq/exchanges.py, master/mq/events.py): the exchange reference
validates against Taskcluster's own schema (tests/fixtures/taskcluster/) and is served and listed
in the manifest, every message the publishers make validates against its exchange's schema, and
the official client's binding patterns, made from the served reference, select the right
routing keys."""

import ast
import json
import pathlib

import jsonschema
import pytest_twisted
import yaml
from taskcluster.client import createApiClient

from buildfarm.master.apicatalog import CATALOG
from buildfarm.master.config import load_config
from buildfarm.master.mq import events
from buildfarm.master.mq.bus import EventBus
from buildfarm.master.mq.exchanges import (
    BUILD_FINISHED,
    BUILDFARM_EXCHANGES,
    CHANGE_ADDED,
    ExchangeSet,
    routing_word,
)
from buildfarm.master.mq.topic import matches
from fixtures import docexamples
from fixtures.memoryhttp import render
from fixtures.memorymaster import memory_master_fixture

HERE = pathlib.Path(__file__).resolve().parent
TASKCLUSTER_SCHEMAS = HERE.parent / "fixtures" / "taskcluster"
SHIPPED = HERE.parents[1] / "common" / "references"
BUILD = {"buildername": "linux", "builderid": 1, "buildid": 7, "number": 3, "buildrequestid": 9,
         "slavename": "bs1", "masterid": 2, "started_at": 10.0}
master = memory_master_fixture()


def taskcluster_schema(name: str) -> dict:
    return yaml.safe_load((TASKCLUSTER_SCHEMAS / f"{name}.yml").read_text())


def one_message_of_each_exchange(bus: EventBus) -> list:
    change = {"changeid": 4, "when_timestamp": 5.0, "project": "", "codebase": None,
              "branch": "release/1.2", "revision": "abc", "repository": "https://git.example/r.git",
              "author": "me", "category": None}
    return [
        events.build_started(bus, BUILD),
        events.build_finished(bus, BUILD, 2, 20.0, "build failed"),
        events.step_finished(bus, BUILD, 11, 0, "compile", 0),
        events.request_submitted(bus, "linux", 1, 9, 5, "force", "because", 0, 8.0),
        events.slave_attached(bus, "bs1", 2, 9.0),
        events.slave_detached(bus, "bs1", 2, 30.0),
        events.action_finished(bus, "reboot", "bs1", 12, 2, "rebooted", 31.0, 2),
        events.change_added(bus, change),
        events.buildset_completed(bus, 5, "force", 2, 21.0, 2),
    ]


def test_the_exchange_reference_validates_against_taskclusters_schema():
    document = CATALOG.exchanges_reference("buildfarm")
    jsonschema.Draft6Validator(taskcluster_schema("exchanges-reference-v0")).validate(document)
    assert document["exchangePrefix"] == "exchange/buildfarm/v1/"
    assert [e["exchange"] for e in document["entries"]] == [
        "build-started", "build-finished", "step-finished", "request-submitted", "slave-attached",
        "slave-detached", "action-finished", "change-added", "buildset-completed"]
    keys = document["entries"][1]["routingKey"]
    assert keys[0] == {"name": "routingKeyKind", "summary": keys[0]["summary"], "constant": "primary",
                       "multipleWords": False, "required": True}
    assert keys[-1]["name"] == "reserved" and keys[-1]["multipleWords"] is True


def test_the_manifest_lists_the_exchange_reference_after_the_api_references():
    document = CATALOG.manifest("http://master:8010/")
    jsonschema.Draft6Validator(taskcluster_schema("manifest-v3")).validate(document)
    assert document["references"][-2:] == ["http://master:8010/references/buildfarm/v1/exchanges.json",
                                            "http://master:8010/references/queue/v1/exchanges.json"]


def test_the_exchange_prefix_of_the_configuration_names_the_exchanges():
    document = CATALOG.exchanges_reference("buildfarm", "exchange/ci/")
    assert document["exchangePrefix"] == "exchange/ci/buildfarm/v1/"
    payload = {"changeId": 1, "when": 0.0}
    message = EventBus("exchange/ci/").message(BUILDFARM_EXCHANGES, CHANGE_ADDED, payload)
    assert message.exchange == "exchange/ci/buildfarm/v1/change-added"


def test_every_message_validates_against_its_exchanges_schema():
    messages = one_message_of_each_exchange(EventBus())
    assert len({m.exchange for m in messages}) == len(BUILDFARM_EXCHANGES.exchanges)
    for message in messages:
        name = message.exchange.rsplit("/", 1)[1] + "-message"
        schema = CATALOG.schema_document("buildfarm", name)
        jsonschema.Draft6Validator.check_schema(schema)
        validator = jsonschema.Draft6Validator(schema, format_checker=jsonschema.FormatChecker())
        validator.validate(message.payload)


def test_routing_keys_have_one_word_per_field_and_an_underscore_for_none():
    bus = EventBus()
    change = {"changeid": 4, "when_timestamp": 5.0, "project": "", "codebase": None, "branch": "release/1.2"}
    assert events.change_added(bus, change).routing_key == "primary.4._._.release/1%2E2._"
    assert events.build_finished(bus, BUILD, 2, 20.0, "x").routing_key == "primary.linux.7.9.bs1.failure.2._"
    assert routing_word("a%b.c") == "a%25b%2Ec"
    assert len(routing_word("x" * 300)) == 32


def test_the_official_clients_binding_patterns_select_the_right_messages():
    # The client class made from the served reference, as taskcluster's generated QueueEvents is.
    reference = {"reference": CATALOG.exchanges_reference("buildfarm")}
    events_client = createApiClient("BuildfarmEvents", reference)({"rootUrl": "http://master:8010"})
    bus = EventBus()
    failed = events.build_finished(bus, BUILD, 2, 20.0, "build failed")
    passed = events.build_finished(bus, {**BUILD, "buildid": 8}, 0, 21.0, "build successful")
    binding = events_client.buildFinished(builderName="linux", result="failure")
    assert binding["exchange"] == failed.exchange == "exchange/buildfarm/v1/build-finished"
    assert matches(binding["routingKeyPattern"], failed.routing_key)
    assert not matches(binding["routingKeyPattern"], passed.routing_key)
    assert matches(events_client.buildFinished()["routingKeyPattern"], passed.routing_key)


def test_an_exchange_set_refuses_a_message_of_an_exchange_it_does_not_declare():
    other = ExchangeSet("other", "t", "d", ())
    try:
        other.message(BUILD_FINISHED, {})
    except ValueError as e:
        assert "not an exchange of other" in str(e)
    else:
        raise AssertionError("no error")


def test_the_shipped_copy_is_what_the_master_serves():
    shipped = json.loads((SHIPPED / "buildfarm-exchanges.json").read_text())
    assert shipped == json.loads(json.dumps(CATALOG.exchanges_reference("buildfarm")))


@pytest_twisted.ensureDeferred
async def test_the_master_serves_the_reference_and_the_message_schemas(master):
    site = master.www.make_site().resource
    response = await render(site, "GET", "/references/buildfarm/v1/exchanges.json")
    assert response.code == 200
    assert json.loads(response.body) == json.loads(json.dumps(CATALOG.exchanges_reference("buildfarm")))
    response = await render(site, "GET", "/schemas/buildfarm/v1/build-finished-message.json")
    assert response.code == 200
    assert json.loads(response.body)["$id"] == "/schemas/buildfarm/v1/build-finished-message.json#"
    manifest = json.loads((await render(site, "GET", "/references/manifest.json")).body)
    assert any(url.endswith("/references/buildfarm/v1/exchanges.json") for url in manifest["references"])


@pytest_twisted.ensureDeferred
async def test_unknown_exchange_references_and_schemas_are_json_404s(master):
    site = master.www.make_site().resource
    for path in ("/references/slaveapi/v1/exchanges.json", "/references/nope/v1/exchanges.json",
                 "/schemas/buildfarm/v1/nope-message.json", "/schemas/nope/v1/x.json"):
        response = await render(site, "GET", path)
        assert response.code == 404, path
        assert "message" in json.loads(response.body) or "error" in json.loads(response.body), path


def test_the_binding_example_of_docs_operations_md_gives_the_pattern_it_shows():
    text = docexamples.example("operations.md", "client-binding")
    namespace = {"reference": CATALOG.exchanges_reference("buildfarm"), "root_url": "http://master:8010"}
    exec(compile(text, "docs/operations.md (client-binding)", "exec"), namespace)  # noqa: S102
    shown = text[text.index("# {"):].replace("\n#", "").lstrip("# ")
    assert namespace["binding"] == ast.literal_eval(shown)


def test_the_configuration_example_of_docs_operations_md_loads(tmp_path):
    cfg = tmp_path / "master.cfg"
    cfg.write_text("c = BuildmasterConfig = {}\n" + docexamples.example("operations.md", "mq-config"))
    settings = load_config(str(cfg)).mq
    assert (settings.type, settings.url, settings.exchange_prefix) == (
        "amqp", "amqp://buildfarm:s3cret@127.0.0.1:5672/", "exchange/")
