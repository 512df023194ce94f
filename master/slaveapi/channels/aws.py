"""``AWSChannel``: the slave's EC2 instance, through boto3.

The slave's inventory entry says where its instances live::

    'aws': {'region': 'us-east-1',
            'endpoint_url': 'http://127.0.0.1:5000',        # optional (moto, a VPC endpoint)
            'access_key_id': 'AKIA...',                      # optional with secret_access_key;
            'secret_access_key': {'env': 'BS1_AWS_SECRET'},  # without both, boto3's default chain
            'instance_types': {
                'build': {'ami': 'ami-0abc', 'instance_type': 'c5.xlarge', 'subnet_id': 'subnet-1',
                          'security_group_ids': ['sg-1'], 'key_name': 'releng',
                          'tags': {'team': 'releng'}},
                'test': {...}}}

``instance_create`` runs an instance from ``instance_types[instance_type]`` tagged ``Name`` =
the slave's name (``<slave>-<disambig>`` when a ``disambig`` is given), ``slave`` = the
slave's name, ``owner`` = ``email`` and ``bug``.  ``instance_start``/``stop``/``terminate``
act on the one instance that is not terminated and is named after the slave (tag ``Name`` is
its name or FQDN, or tag ``slave`` is its name).  Each operation waits until the instance
reaches the state asked for (polling ``DescribeInstances``) and answers
``{"instance_id", "name", "state", "private_ip"}``.

boto3 blocks: every AWS call runs in a thread, each HTTP request with botocore's own
timeouts, and the whole operation within the caller's deadline.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from twisted.internet import defer, task, threads
from zope.interface import implementer

from buildfarm.common.deadline import with_deadline
from buildfarm.master.auth.secret import Secret
from buildfarm.master.slaveapi.channels.interfaces import (
    INSTANCE_CREATE,
    INSTANCE_START,
    INSTANCE_STOP,
    INSTANCE_TERMINATE,
    ChannelError,
    IChannel,
)

POLL_INTERVAL_S = 2.0       # between two looks at an instance on its way to a state
CONNECT_TIMEOUT_S = 10      # botocore, per HTTP request
READ_TIMEOUT_S = 30         # botocore, per HTTP request
MAX_ATTEMPTS = 3            # botocore retries (standard mode), per call

# Instances that are (or will soon be) there; "shutting-down" ones are on their way out.
LIVE_STATES = ("pending", "running", "stopping", "stopped")
NOT_TERMINATED_STATES = (*LIVE_STATES, "shutting-down")
# operation -> (what it does, EC2 call, the state it waits for, states that mean it never will)
TRANSITIONS = {
    INSTANCE_START: ("starting", "start_instances", "running", ("shutting-down", "terminated")),
    INSTANCE_STOP: ("stopping", "stop_instances", "stopped", ("shutting-down", "terminated")),
    INSTANCE_TERMINATE: ("terminating", "terminate_instances", "terminated", ()),
}
CREATE_TARGET, CREATE_DEAD_ENDS = "running", ("shutting-down", "terminated")
INSTANCE_TYPE_KEYS = frozenset({"ami", "instance_type", "subnet_id", "security_group_ids", "key_name",
                                "tags"})
AWS_KEYS = frozenset({"region", "endpoint_url", "access_key_id", "secret_access_key", "session_token",
                      "instance_types"})


@dataclass(frozen=True)
class AWSSettings:
    """One slave's ``aws`` inventory entry, checked."""

    region: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: Any = field(default=None, repr=False)  # a Secret (or a plain str)
    session_token: Any = field(default=None, repr=False)
    instance_types: dict = field(default_factory=dict)

    def where(self) -> str:
        return self.region + (f" at {self.endpoint_url}" if self.endpoint_url else "")


def aws_settings(location) -> AWSSettings:
    """The ``aws`` settings of ``location``; ``ChannelError`` saying what is wrong with them."""
    raw = (location.channels if location is not None else {}).get("aws")
    if not isinstance(raw, dict):
        raise ChannelError("no AWS settings for this slave")
    unknown = sorted(set(raw) - AWS_KEYS)
    if unknown:
        raise ChannelError(f"aws settings: unknown key {unknown[0]!r} "
                           f"(allowed: {', '.join(sorted(AWS_KEYS))})")
    region = raw.get("region")
    if not isinstance(region, str) or not region:
        raise ChannelError("aws settings: 'region' must be a region name like 'us-east-1'")
    endpoint_url = raw.get("endpoint_url")
    if endpoint_url is not None and (not isinstance(endpoint_url, str)
                                     or not endpoint_url.startswith(("http://", "https://"))):
        raise ChannelError("aws settings: 'endpoint_url' must be an http:// or https:// URL")
    key_id, secret = raw.get("access_key_id"), raw.get("secret_access_key")
    if (key_id is None) != (secret is None):
        raise ChannelError("aws settings: give both 'access_key_id' and 'secret_access_key', or neither "
                           "(to use boto3's default credentials)")
    if key_id is not None and not isinstance(key_id, str):
        raise ChannelError("aws settings: 'access_key_id' must be a string")
    instance_types = raw.get("instance_types", {})
    if not isinstance(instance_types, dict):
        raise ChannelError("aws settings: 'instance_types' must map build/test to instance settings")
    return AWSSettings(region, endpoint_url, key_id, secret, raw.get("session_token"), instance_types)


def _reveal(value) -> str | None:
    return value.reveal() if isinstance(value, Secret) else value


def make_ec2_client(settings: AWSSettings):
    """A boto3 EC2 client for these settings (blocking: call it in a thread)."""
    config = Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                    retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"})
    session = boto3.session.Session(
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=_reveal(settings.secret_access_key),
        aws_session_token=_reveal(settings.session_token),
        region_name=settings.region)
    return session.client("ec2", endpoint_url=settings.endpoint_url, config=config)


def launch_parameters(settings: AWSSettings, instance_type: str, tags: dict[str, str]) -> dict:
    """The ``RunInstances`` parameters for ``instance_types[instance_type]``."""
    chosen = settings.instance_types.get(instance_type)
    if chosen is None:
        have = ", ".join(sorted(settings.instance_types)) or "none"
        raise ChannelError(f"this slave has no {instance_type!r} instance type in its aws settings "
                           f"(it has: {have})")
    where = f"aws settings: instance_types[{instance_type!r}]"
    if not isinstance(chosen, dict):
        raise ChannelError(f"{where} must be a dict like {{'ami': ..., 'instance_type': ...}}")
    unknown = sorted(set(chosen) - INSTANCE_TYPE_KEYS)
    if unknown:
        raise ChannelError(f"{where}: unknown key {unknown[0]!r} "
                           f"(allowed: {', '.join(sorted(INSTANCE_TYPE_KEYS))})")
    for key in ("ami", "instance_type"):
        if not isinstance(chosen.get(key), str) or not chosen[key]:
            raise ChannelError(f"{where}: {key!r} is required (a string)")
    groups = chosen.get("security_group_ids", [])
    if not isinstance(groups, list | tuple) or not all(isinstance(g, str) for g in groups):
        raise ChannelError(f"{where}: 'security_group_ids' must be a list of security group ids")
    extra_tags = chosen.get("tags", {})
    if not isinstance(extra_tags, dict):
        raise ChannelError(f"{where}: 'tags' must be a dict of tag names to values")
    all_tags = {**{str(k): str(v) for k, v in extra_tags.items()}, **tags}
    params = {
        "ImageId": chosen["ami"], "InstanceType": chosen["instance_type"], "MinCount": 1, "MaxCount": 1,
        "TagSpecifications": [{"ResourceType": "instance",
                               "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()]}],
    }
    if chosen.get("subnet_id"):
        params["SubnetId"] = chosen["subnet_id"]
    if groups:
        params["SecurityGroupIds"] = list(groups)
    if chosen.get("key_name"):
        params["KeyName"] = chosen["key_name"]
    return params


def instance_tags(slave: str, email: str | None, bug: int | None, disambig: str | None) -> dict[str, str]:
    """The tags of a new instance for ``slave``."""
    tags = {"Name": f"{slave}-{disambig}" if disambig else slave, "slave": slave}
    if email:
        tags["owner"] = email
    if bug is not None:
        tags["bug"] = str(bug)
    return tags


def _tags(instance: dict) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}


def describe(instance: dict) -> dict:
    """What the channel answers about an instance."""
    return {"instance_id": instance["InstanceId"], "name": _tags(instance).get("Name"),
            "state": instance["State"]["Name"], "private_ip": instance.get("PrivateIpAddress")}


def aws_error(e: Exception) -> ChannelError:
    """A botocore error as a ``ChannelError`` with AWS's error code and message."""
    response = getattr(e, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response["Error"]
        code, message = error.get("Code") or "error", error.get("Message") or ""
        return ChannelError(f"AWS refused: {code}" + (f": {message}" if message else ""))
    return ChannelError(f"AWS call failed: {type(e).__name__}: {e}")


class EC2:
    """The blocking EC2 calls the channel makes, on one client (each runs in a thread)."""

    def __init__(self, client):
        self.client = client

    def instances(self, tag_values: list[str], states: tuple[str, ...]) -> list[dict]:
        filters = [{"Name": "tag-value", "Values": tag_values},
                   {"Name": "instance-state-name", "Values": list(states)}]
        found = []
        for page in self.client.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page["Reservations"]:
                found += reservation["Instances"]
        return found

    def instance(self, instance_id: str) -> dict | None:
        reservations = self.client.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return reservations[0]["Instances"][0] if reservations and reservations[0]["Instances"] else None

    def run(self, params: dict) -> dict:
        return self.client.run_instances(**params)["Instances"][0]

    def change(self, call: str, instance_id: str) -> None:
        getattr(self.client, call)(InstanceIds=[instance_id])


@implementer(IChannel)
class AWSChannel:
    """EC2 instances of cloud slaves: create, start, stop, terminate (see the module doc)."""

    name = "aws"
    operations = frozenset({INSTANCE_CREATE, INSTANCE_START, INSTANCE_STOP, INSTANCE_TERMINATE})

    def __init__(self, runner, make_client: Callable = make_ec2_client,
                 in_thread: Callable[..., defer.Deferred] = threads.deferToThread):
        self.runner = runner
        self._make_client = make_client
        self._in_thread = in_thread

    def configured_for(self, location) -> bool:
        try:
            aws_settings(location)
        except ChannelError:
            return False
        return True

    def perform(self, operation, location, say, clock, deadline_s, **kwargs) -> defer.Deferred:
        if operation not in self.operations:
            return defer.fail(ChannelError(f"the aws channel cannot {operation}"))
        return with_deadline(self._perform(operation, location, say, clock, kwargs), deadline_s, clock,
                             lambda: ChannelError(f"AWS did not finish within {deadline_s:g} s"))

    async def _perform(self, operation, location, say, clock, kwargs) -> dict:
        settings = aws_settings(location)
        ec2 = EC2(await self._call(self._make_client, settings))
        if operation == INSTANCE_CREATE:
            return await self._create(ec2, settings, location, say, clock, **kwargs)
        verb, call, target, dead_ends = TRANSITIONS[operation]
        instance = await self._find(ec2, settings, location)
        say(f"aws: {location.name}'s instance {instance['InstanceId']} in {settings.where()} is "
            f"{instance['State']['Name']}; {verb} it")
        await self._call(ec2.change, call, instance["InstanceId"])
        return await self._wait_for(ec2, instance["InstanceId"], target, dead_ends, say, clock)

    async def _create(self, ec2: EC2, settings: AWSSettings, location, say, clock, instance_type: str,
                      email: str | None = None, bug: int | None = None, disambig: str | None = None) -> dict:
        tags = instance_tags(location.name, email, bug, disambig)
        params = launch_parameters(settings, instance_type, tags)
        existing = [i for i in await self._call(ec2.instances, [tags["Name"]], LIVE_STATES)
                    if _tags(i).get("Name") == tags["Name"]]
        if existing:
            ids = ", ".join(f"{i['InstanceId']} ({i['State']['Name']})" for i in existing)
            raise ChannelError(f"an instance named {tags['Name']} already exists: {ids}; terminate it "
                               "or give a disambig")
        say(f"aws: creating a {instance_type} instance named {tags['Name']} in {settings.where()}: "
            f"{params['InstanceType']} from {params['ImageId']}"
            + (f" in {params['SubnetId']}" if "SubnetId" in params else ""))
        instance = await self._call(ec2.run, params)
        say(f"aws: created {instance['InstanceId']}")
        answer = await self._wait_for(ec2, instance["InstanceId"], CREATE_TARGET, CREATE_DEAD_ENDS, say,
                                      clock)
        # The tags it was launched with (the original SlaveAPI answered them)
        return {**answer, "tags": _tags(params["TagSpecifications"][0])}

    async def _find(self, ec2: EC2, settings: AWSSettings, location) -> dict:
        """The one not-terminated instance named after the slave."""
        names = [name for name in (location.name, location.fqdn) if name]
        candidates = await self._call(ec2.instances, names, NOT_TERMINATED_STATES)
        found = [i for i in candidates
                 if _tags(i).get("Name") in names or _tags(i).get("slave") == location.name]
        if not found:
            raise ChannelError(f"no instance tagged Name={' or '.join(names)} (other than terminated ones) "
                               f"in {settings.where()}")
        if len(found) > 1:
            ids = ", ".join(f"{i['InstanceId']} ({_tags(i).get('Name')}, {i['State']['Name']})"
                            for i in found)
            raise ChannelError(f"{len(found)} instances are named after {location.name}: {ids}; "
                               "terminate the extra ones")
        return found[0]

    async def _wait_for(self, ec2: EC2, instance_id: str, target: str, dead_ends: tuple[str, ...],
                        say, clock) -> dict:
        """Look at the instance until it is in ``target`` (the caller's deadline bounds this)."""
        while True:
            instance = await self._call(ec2.instance, instance_id)
            if instance is None:
                raise ChannelError(f"instance {instance_id} is gone")
            state = instance["State"]["Name"]
            if state == target:
                answer = describe(instance)
                say(f"aws: {instance_id} is {state}"
                    + (f" (private ip {answer['private_ip']})" if answer["private_ip"] else ""))
                return answer
            if state in dead_ends:
                reason = instance.get("StateReason", {}).get("Message")
                raise ChannelError(f"instance {instance_id} went {state} instead of {target}"
                                   + (f": {reason}" if reason else ""))
            await task.deferLater(clock, POLL_INTERVAL_S, lambda: None)

    async def _call(self, f, *args):
        """``f(*args)`` in a thread; botocore errors become ``ChannelError``."""
        try:
            return await self._in_thread(f, *args)
        except (BotoCoreError, ClientError) as e:
            raise aws_error(e) from None
