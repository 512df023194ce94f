"""The AWS actions of the SlaveAPI end to end: a real master and slave, moto's standalone
EC2 server on loopback, driven over HTTP as an on-call engineer does; every state change is
checked by asking moto itself."""

import pytest

from fixtures.moto_server import MotoServer
from fixtures.slaveapi import start_slaveapi_master

FAILURE, SUCCESS = 3, 2
WAIT_S = "60"



@pytest.fixture
def moto(tmp_path):
    server = MotoServer.start(str(tmp_path))
    yield server
    server.stop()


def start(fleet, moto):
    network = moto.network()
    aws = {
        "region": moto.region, "endpoint_url": moto.endpoint_url,
        "access_key_id": moto.access_key_id, "secret_access_key": moto.secret_access_key,
        "instance_types": {"build": {"ami": network.ami, "instance_type": "c5.xlarge",
                                     "subnet_id": network.subnet_id,
                                     "security_group_ids": [network.security_group_id],
                                     "key_name": network.key_name}},
    }
    master, client = start_slaveapi_master(fleet, {"bs1": {"fqdn": "bs1.build.example.com", "aws": aws}})
    fleet.slave(master)
    master.wait_attached("bs1")
    return master, network, client


def only_instance(moto) -> dict:
    (instance,) = moto.instances({"tag:slave": ["bs1"]})
    return instance


def test_create_stop_start_terminate_an_instance_in_moto(fleet, moto):
    master, network, oncall = start(fleet, moto)

    status, created = oncall.call("POST", "/slaves/bs1/actions/aws_create_instance", instance_type="Build",
                                  email="oncall@example.com", bug="1234", waittime=WAIT_S)
    assert status == 200 and created["state"] == SUCCESS, created
    instance = only_instance(moto)
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags == {"Name": "bs1", "slave": "bs1", "owner": "oncall@example.com", "bug": "1234"}
    assert (instance["InstanceType"], instance["ImageId"], instance["SubnetId"], instance["KeyName"]) == (
        "c5.xlarge", network.ami, network.subnet_id, network.key_name)
    assert instance["State"]["Name"] == "running"
    assert created["data"] == {"instance_id": instance["InstanceId"], "name": "bs1", "state": "running",
                               "private_ip": instance["PrivateIpAddress"], "tags": tags}
    assert created["text"] == {**tags, "ip": instance["PrivateIpAddress"]}  # as the original answered
    assert f"instance {instance['InstanceId']} of bs1 is running" in created["story"]

    for path, state in (("stop", "stopped"), ("start", "running"), ("aws_stop_instance", "stopped"),
                        ("aws_start_instance", "running"), ("terminate", "terminated")):
        status, result = oncall.call("POST", f"/slaves/bs1/actions/{path}", waittime=WAIT_S)
        assert status == 200 and result["state"] == SUCCESS, (path, result)
        assert result["data"]["state"] == state and instance["InstanceId"] in result["text"]
        assert only_instance(moto)["State"]["Name"] == state, path

    status, result = oncall.call("POST", "/slaves/bs1/actions/stop", waittime=WAIT_S)
    assert status == 200 and result["state"] == FAILURE
    assert "no instance tagged Name=bs1 or bs1.build.example.com" in result["text"]

    page = oncall.call("GET", "/slaves/bs1")[1]
    assert page["channels"]["aws"]["secret_access_key"] == "(secret)"
    assert moto.secret_access_key not in master.log_text()
    assert moto.secret_access_key not in str(oncall.call("GET", "/results")[1])


def test_an_unconfigured_instance_type_fails_and_malformed_arguments_are_400(fleet, moto):
    _, _, oncall = start(fleet, moto)
    status, body = oncall.call("POST", "/slaves/bs1/actions/aws_create_instance", instance_type="huge")
    assert status == 400 and body["msg"].startswith("instance_type:"), body
    status, body = oncall.call("POST", "/slaves/bs1/actions/aws_create_instance", instance_type="build",
                               bug="twelve")
    assert status == 400 and body["msg"].startswith("bug:"), body
    status, body = oncall.call("POST", "/slaves/bs1/actions/aws_create_instance", instance_type="build",
                               disambig="../etc")
    assert status == 400 and body["msg"].startswith("disambig:"), body

    status, result = oncall.call("POST", "/slaves/bs1/actions/aws_create_instance", instance_type="test",
                                 waittime=WAIT_S)
    assert status == 200 and result["state"] == FAILURE
    assert "no 'test' instance type in its aws settings (it has: build)" in result["text"]
    assert moto.instances({"tag:slave": ["bs1"]}) == []


def test_a_second_instance_needs_a_disambig_and_then_start_finds_two(fleet, moto):
    _, _, oncall = start(fleet, moto)
    create = "/slaves/bs1/actions/aws_create_instance"
    assert oncall.call("POST", create, instance_type="build", waittime=WAIT_S)[1]["state"] == SUCCESS
    status, twin = oncall.call("POST", create, instance_type="build", waittime=WAIT_S)
    assert twin["state"] == FAILURE and "an instance named bs1 already exists" in twin["text"], twin
    status, second = oncall.call("POST", create, instance_type="build", disambig="b", waittime=WAIT_S)
    assert second["state"] == SUCCESS and second["data"]["name"] == "bs1-b", second
    assert sorted(i["State"]["Name"] for i in moto.instances({"tag:slave": ["bs1"]})) == ["running"] * 2
    status, result = oncall.call("POST", "/slaves/bs1/actions/stop", waittime=WAIT_S)
    assert result["state"] == FAILURE and "2 instances are named after bs1" in result["text"], result
