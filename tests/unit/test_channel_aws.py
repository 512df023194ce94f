"""The aws channel and the AWS actions, in memory: a scripted EC2 client (the botocore
surface the channel uses), calls run synchronously instead of in a thread, and a Clock for
the polling and the deadline; the actions run in an ActionContext of a real master in memory.
moto's real EC2 server is in the e2e test."""

import pytest
import pytest_twisted
from botocore.exceptions import ClientError, EndpointConnectionError
from twisted.internet import defer, task
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from buildfarm.master.auth.secret import Secret
from buildfarm.master.slaveapi.actions import action_table
from buildfarm.master.slaveapi.actions.aws import AWSCreateInstance, AWSStopInstance
from buildfarm.master.slaveapi.actions.base import ActionContext, ActionFailed, BadArgument
from buildfarm.master.slaveapi.channels.aws import (
    POLL_INTERVAL_S,
    AWSChannel,
    aws_settings,
    make_ec2_client,
)
from buildfarm.master.slaveapi.channels.interfaces import (
    INSTANCE_CREATE,
    INSTANCE_START,
    INSTANCE_STOP,
    INSTANCE_TERMINATE,
    REBOOT,
    ChannelError,
    IChannel,
)
from buildfarm.master.slaveapi.inventory import SlaveLocation
from buildfarm.master.slaveapi.settings import SlaveAPISettings
from fixtures.channelhost import ChannelHost
from fixtures.memorymaster import start_memory_master

SECRET = "wJalrXUtnFEMI-not-to-be-seen"
BUILD = {"ami": "ami-123", "instance_type": "c5.xlarge", "subnet_id": "subnet-1",
         "security_group_ids": ["sg-1"], "key_name": "releng", "tags": {"team": "releng"}}
DEADLINE_S = 60.0


class FakeEC2:
    """EC2 as the channel sees it: instances with tags and scripted state changes."""

    def __init__(self):
        self.instances: dict[str, dict] = {}
        self.calls: list[tuple[str, dict]] = []
        self.next_states: dict[str, list[str]] = {}  # states the next describes see, in order
        self.refuse: ClientError | None = None

    def add(self, name: str, state: str = "running", **tags) -> str:
        instance_id = f"i-{len(self.instances) + 1:04d}"
        self.instances[instance_id] = {
            "InstanceId": instance_id, "State": {"Name": state}, "PrivateIpAddress": "10.0.0.9",
            "Tags": [{"Key": "Name", "Value": name}] + [{"Key": k, "Value": v} for k, v in tags.items()]}
        return instance_id

    def _record(self, call: str, **kwargs) -> None:
        self.calls.append((call, kwargs))
        if self.refuse is not None:
            raise self.refuse

    def _step(self, instance: dict) -> dict:
        pending = self.next_states.get(instance["InstanceId"])
        if pending:
            instance["State"] = {"Name": pending.pop(0)}
        return instance

    def get_paginator(self, call: str):
        assert call == "describe_instances"
        return _Paginator(self)

    def filtered(self, filters: list[dict]) -> dict:
        self._record("describe_instances", Filters=filters)
        wanted = {f["Name"]: f["Values"] for f in filters}
        found = [i for i in self.instances.values()
                 if i["State"]["Name"] in wanted["instance-state-name"]
                 and any(t["Value"] in wanted["tag-value"] for t in i["Tags"])]
        return {"Reservations": [{"Instances": found}] if found else []}

    def describe_instances(self, InstanceIds):  # noqa: N803 (botocore's names)
        self._record("describe_instances", InstanceIds=InstanceIds)
        return {"Reservations": [{"Instances": [self._step(self.instances[i]) for i in InstanceIds]}]}

    def run_instances(self, **params):
        self._record("run_instances", **params)
        tags = {t["Key"]: t["Value"] for t in params["TagSpecifications"][0]["Tags"]}
        name = tags.pop("Name")
        instance_id = self.add(name, "pending", **tags)
        self.next_states[instance_id] = ["running"]
        return {"Instances": [self.instances[instance_id]]}

    def _change(self, call: str, ids: list[str], transient: str, final: str) -> dict:
        self._record(call, InstanceIds=ids)
        for instance_id in ids:
            self.instances[instance_id]["State"] = {"Name": transient}
            self.next_states.setdefault(instance_id, [final])
        return {}

    def start_instances(self, InstanceIds):  # noqa: N803
        return self._change("start_instances", InstanceIds, "pending", "running")

    def stop_instances(self, InstanceIds):  # noqa: N803
        return self._change("stop_instances", InstanceIds, "stopping", "stopped")

    def terminate_instances(self, InstanceIds):  # noqa: N803
        return self._change("terminate_instances", InstanceIds, "shutting-down", "terminated")


class _Paginator:
    """``get_paginator("describe_instances")``: one page of the instances the filters match."""

    def __init__(self, ec2):
        self._ec2 = ec2

    def paginate(self, Filters):  # noqa: N803 - botocore's name
        return [self._ec2.filtered(Filters)]


def location(**aws) -> SlaveLocation:
    settings = {"region": "us-east-1", "access_key_id": "AKIATEST", "secret_access_key": Secret(SECRET),
                "instance_types": {"build": dict(BUILD)}, **aws}
    return SlaveLocation("bs1", fqdn="bs1.build.example.com", channels={"aws": settings})


@pytest.fixture
def ec2():
    return FakeEC2()


@pytest.fixture
def clock():
    return task.Clock()


@pytest.fixture
def channel(ec2):
    made_with = []

    def make_client(settings):
        made_with.append(settings)
        return ec2
    channel = AWSChannel(ChannelHost(task.Clock()), make_client=make_client,
                         in_thread=lambda f, *args: defer.maybeDeferred(f, *args))
    channel.made_with = made_with
    return channel


def perform(channel, clock, operation, lines=None, where=None, **kwargs) -> defer.Deferred:
    lines = [] if lines is None else lines
    return channel.perform(operation, where or location(), lines.append, clock, DEADLINE_S, **kwargs)


def failure_of(d: defer.Deferred) -> Exception:
    failures = []
    d.addErrback(failures.append)
    assert failures, "expected a failure"
    return failures[0].value


def test_the_channel_provides_ichannel_with_the_instance_operations(channel):
    assert verifyObject(IChannel, channel)
    assert channel.name == "aws"
    assert channel.operations == {INSTANCE_CREATE, INSTANCE_START, INSTANCE_STOP, INSTANCE_TERMINATE}


def test_configured_for_needs_a_region_and_both_keys_or_neither(channel):
    assert channel.configured_for(location())
    assert channel.configured_for(location(access_key_id=None, secret_access_key=None))
    assert not channel.configured_for(location(region=None))
    assert not channel.configured_for(location(secret_access_key=None))
    assert not channel.configured_for(SlaveLocation("bs1"))


def test_create_runs_the_instance_types_settings_with_the_tags_and_waits_for_running(channel, ec2, clock):
    lines = []
    d = perform(channel, clock, INSTANCE_CREATE, lines, instance_type="build", email="me@example.com",
                bug=42, disambig=None)
    answer = _result(d)
    (params,) = [kwargs for call, kwargs in ec2.calls if call == "run_instances"]
    assert {k: v for k, v in params.items() if k != "TagSpecifications"} == {
        "ImageId": "ami-123", "InstanceType": "c5.xlarge", "MinCount": 1, "MaxCount": 1,
        "SubnetId": "subnet-1", "SecurityGroupIds": ["sg-1"], "KeyName": "releng"}
    tags = {t["Key"]: t["Value"] for t in params["TagSpecifications"][0]["Tags"]}
    assert tags == {"team": "releng", "Name": "bs1", "slave": "bs1", "owner": "me@example.com", "bug": "42"}
    assert answer == {"instance_id": "i-0001", "name": "bs1", "state": "running", "private_ip": "10.0.0.9",
                      "tags": tags}
    assert lines[-1] == "aws: i-0001 is running (private ip 10.0.0.9)"


def test_create_names_a_second_instance_with_the_disambig_and_refuses_a_twin(channel, ec2, clock):
    ec2.add("bs1", slave="bs1")
    twin = failure_of(perform(channel, clock, INSTANCE_CREATE, instance_type="build"))
    assert "an instance named bs1 already exists: i-0001 (running)" in str(twin)
    answer = _result(perform(channel, clock, INSTANCE_CREATE, instance_type="build", disambig="b"))
    assert answer["name"] == "bs1-b"


def test_create_of_an_instance_type_the_slave_lacks_fails_saying_which_it_has(channel, clock):
    error = failure_of(perform(channel, clock, INSTANCE_CREATE, instance_type="test"))
    assert isinstance(error, ChannelError)
    assert str(error) == "this slave has no 'test' instance type in its aws settings (it has: build)"


def test_create_with_an_instance_type_missing_its_ami_says_so(channel, clock):
    where = location(instance_types={"build": {"instance_type": "c5.xlarge"}})
    error = failure_of(perform(channel, clock, INSTANCE_CREATE, where=where, instance_type="build"))
    assert "instance_types['build']: 'ami' is required" in str(error)


def test_stop_finds_the_instance_by_fqdn_and_polls_until_stopped(channel, ec2, clock):
    instance_id = ec2.add("bs1.build.example.com")
    ec2.next_states[instance_id] = ["stopping", "stopped"]
    lines = []
    d = perform(channel, clock, INSTANCE_STOP, lines)
    assert not d.called  # the first look saw "stopping"
    clock.advance(POLL_INTERVAL_S)
    assert _result(d)["state"] == "stopped"
    assert ("stop_instances", {"InstanceIds": [instance_id]}) in ec2.calls
    assert lines[0] == f"aws: bs1's instance {instance_id} in us-east-1 is running; stopping it"


@pytest.mark.parametrize("operation, final", [(INSTANCE_START, "running"),
                                              (INSTANCE_TERMINATE, "terminated")])
def test_start_and_terminate_wait_for_their_state(channel, ec2, clock, operation, final):
    ec2.add("bs1", state="stopped")
    assert _result(perform(channel, clock, operation))["state"] == final


def test_terminated_instances_are_not_found_and_nothing_is_called(channel, ec2, clock):
    ec2.add("bs1", state="terminated")
    error = failure_of(perform(channel, clock, INSTANCE_START))
    assert str(error) == ("no instance tagged Name=bs1 or bs1.build.example.com (other than terminated "
                          "ones) in us-east-1")
    assert [call for call, _ in ec2.calls] == ["describe_instances"]


def test_several_instances_named_after_the_slave_are_refused(channel, ec2, clock):
    ec2.add("bs1")
    ec2.add("bs1-b", slave="bs1")
    ec2.add("bs10")  # another slave's: not one of them
    error = failure_of(perform(channel, clock, INSTANCE_STOP))
    assert str(error).startswith("2 instances are named after bs1: i-0001 (bs1, running), i-0002 (bs1-b")
    assert "stop_instances" not in [call for call, _ in ec2.calls]


def test_an_instance_that_ends_terminated_while_starting_fails_with_its_reason(channel, ec2, clock):
    instance_id = ec2.add("bs1", state="stopped")
    ec2.next_states[instance_id] = ["terminated"]
    ec2.instances[instance_id]["StateReason"] = {"Message": "Server.InternalError"}
    error = failure_of(perform(channel, clock, INSTANCE_START))
    assert str(error) == f"instance {instance_id} went terminated instead of running: Server.InternalError"


def test_aws_errors_become_channel_errors_with_the_code_and_message(channel, ec2, clock):
    ec2.add("bs1")
    message = "You are not authorized to perform this operation."
    ec2.refuse = ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": message}},
                             "StopInstances")
    error = failure_of(perform(channel, clock, INSTANCE_STOP))
    assert str(error) == f"AWS refused: UnauthorizedOperation: {message}"
    ec2.refuse = EndpointConnectionError(endpoint_url="http://127.0.0.1:1/")
    error = failure_of(perform(channel, clock, INSTANCE_STOP))
    assert str(error).startswith("AWS call failed: EndpointConnectionError: Could not connect")


def test_an_instance_that_never_stops_fails_at_the_deadline(channel, ec2, clock):
    instance_id = ec2.add("bs1")
    ec2.next_states[instance_id] = ["stopping"] * 1000
    d = perform(channel, clock, INSTANCE_STOP)
    clock.pump([POLL_INTERVAL_S] * int(DEADLINE_S / POLL_INTERVAL_S + 1))
    error = failure_of(d)
    assert str(error) == f"AWS did not finish within {DEADLINE_S:g} s"
    assert not clock.getDelayedCalls()


def test_an_operation_it_does_not_have_is_a_channel_error(channel, clock):
    assert "cannot reboot" in str(failure_of(perform(channel, clock, REBOOT)))


def test_bad_settings_are_channel_errors_naming_the_key(channel, clock):
    error = failure_of(perform(channel, clock, INSTANCE_START, where=location(endpoint_url="localhost:5000")))
    assert "'endpoint_url' must be an http:// or https:// URL" in str(error)
    error = failure_of(perform(channel, clock, INSTANCE_START, where=location(zone="a")))
    assert "unknown key 'zone'" in str(error)


def test_the_secret_key_reaches_boto3_and_nothing_else(channel, ec2, clock):
    ec2.add("bs1")
    lines = []
    _result(perform(channel, clock, INSTANCE_STOP, lines))
    (settings,) = channel.made_with
    assert SECRET not in repr(settings) and SECRET not in "\n".join(lines)
    client = make_ec2_client(aws_settings(location(endpoint_url="http://127.0.0.1:1")))
    credentials = client._request_signer._credentials
    assert (credentials.access_key, credentials.secret_key) == ("AKIATEST", SECRET)
    assert client.meta.endpoint_url == "http://127.0.0.1:1" and client.meta.region_name == "us-east-1"


# -- the actions ---------------------------------------------------------------------------------

def test_start_stop_terminate_are_aliases_of_the_aws_actions():
    table = action_table()
    assert {alias: table[alias].name for alias in ("start", "stop", "terminate")} == {
        "start": "aws_start_instance", "stop": "aws_stop_instance", "terminate": "aws_terminate_instance"}


@pytest.mark.parametrize("given, field", [
    ({"instance_type": "huge"}, "instance_type"),
    ({}, "instance_type"),
    ({"instance_type": "build", "bug": "twelve"}, "bug"),
    ({"instance_type": "build", "disambig": "../x"}, "disambig"),
    ({"instance_type": "build", "email": "x" * 300}, "email"),
])
def test_malformed_create_arguments_are_refused_naming_the_field(given, field):
    with pytest.raises(BadArgument) as caught:
        AWSCreateInstance().parse_args(given)
    assert caught.value.field == field


def test_create_arguments_are_parsed():
    assert AWSCreateInstance().parse_args({"instance_type": "test", "bug": "7", "email": "a@b.c"}) == {
        "instance_type": "test", "bug": 7, "email": "a@b.c", "disambig": None, "arch": None}


@pytest.mark.parametrize(("given", "instance_type", "arch"), [
    ({"instance_type": "BUILD"}, "build", None),
    ({"instance_type": " Test ", "arch": "32"}, "test", "32"),
    ({"instance_type": "build", "arch": "64"}, "build", "64"),
    ({"instance_type": "test", "arch": "x86_64"}, "test", "64"),
])
def test_create_accepts_the_original_spellings_of_instance_type_and_arch(given, instance_type, arch):
    parsed = AWSCreateInstance().parse_args(given)
    assert (parsed["instance_type"], parsed["arch"]) == (instance_type, arch)


@pytest.mark.parametrize(("given", "message"), [
    ({"instance_type": "build", "arch": "32"}, "arch: 32-bit instances are not used for building"),
    ({"instance_type": "test", "arch": "128"}, "arch: must be 32 or 64, not '128'"),
])
def test_create_refuses_what_the_original_could_not_use_naming_the_field(given, message):
    with pytest.raises(BadArgument) as caught:
        AWSCreateInstance().parse_args(given)
    assert str(caught.value) == message


@pytest_twisted.async_yield_fixture
async def farm(tmp_path):
    """A real master in memory."""
    master = await start_memory_master(tmp_path)
    yield master
    await master.stopService()


def context(master, channel, args, where=None) -> ActionContext:
    """The context of an action on bs1 of ``master`` whose SlaveAPI's aws channel is ``channel``."""
    master.slaveapi.channels = {"aws": channel}
    return ActionContext(1, "bs1", args, "oncall", master, master.slaveapi, SlaveAPISettings(),
                         where or location())


@pytest_twisted.ensureDeferred
async def test_the_create_action_says_the_instance_and_its_state(farm, channel):
    ctx = context(farm, channel, {"instance_type": "build", "bug": 9, "email": None, "disambig": None})
    answer = _result(defer.ensureDeferred(AWSCreateInstance().run(ctx)))
    assert answer["state"] == "running"
    assert ctx.lines[-1] == "instance i-0001 of bs1 is running"


@pytest_twisted.ensureDeferred
async def test_the_stop_action_fails_with_the_channels_reason(farm, channel):
    ctx = context(farm, channel, {"bug": None})
    error = failure_of(defer.ensureDeferred(AWSStopInstance().run(ctx)))
    assert isinstance(error, ActionFailed)
    assert str(error).startswith("cannot stop the instance: no instance tagged Name=bs1")


@pytest_twisted.ensureDeferred
async def test_an_action_on_a_slave_without_aws_settings_fails_saying_so(farm, channel):
    ctx = context(farm, channel, {"bug": None}, where=SlaveLocation("bs1"))
    error = failure_of(defer.ensureDeferred(AWSStopInstance().run(ctx)))
    assert str(error) == "no AWS settings for this slave"


def _result(d: defer.Deferred):
    results = []
    d.addBoth(results.append)
    assert results, "the operation has not finished"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]
