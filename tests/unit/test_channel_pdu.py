"""The pdu channel in memory: snmpset/snmpget scripted (argv, the private snmp.conf they
read, answers), a Clock for the deadline; outlet names; and ``run_tool`` with real processes.
The real snmpd PDU is in tests/integration/test_slaveapi_power_e2e.py."""

import os
import stat

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from zope.interface.verify import verifyObject

from buildfarm.master.auth.secret import Secret
from buildfarm.master.slaveapi.channels.interfaces import REBOOT, ChannelError, IChannel
from buildfarm.master.slaveapi.channels.pdu import (
    OUTLET_CONTROL_OID,
    PDUChannel,
    outlet_number,
    settings_problems,
    snmp_conf,
)
from buildfarm.master.slaveapi.channels.powertools import ToolMissing, run_tool, tool_environment
from buildfarm.master.slaveapi.inventory import SlaveLocation
from fixtures.channelhost import ChannelHost
from fixtures.scripted_tools import ScriptedTools, outcome, perform_reboot

COMMUNITY = "pdu-community-not-to-be-seen"
DEADLINE_S = 60.0
OID_12 = f"{OUTLET_CONTROL_OID}.12"


def location(**pdu) -> SlaveLocation:
    settings = {"fqdn": "pdu3.example.com", "community": Secret(COMMUNITY), "outlet": "AA12", **pdu}
    return SlaveLocation("bs1", channels={"pdu": settings})


def reboot(tools: ScriptedTools, where: SlaveLocation, clock=None):
    return perform_reboot(PDUChannel, tools, where, DEADLINE_S, clock)


class SeenConf:
    """Records the snmp.conf each tool run could read (the channel removes it afterwards)."""

    def __init__(self):
        self.confs: list[tuple[str, int]] = []
        self.dirs: list[str] = []

    def __call__(self, argv, env):
        path = os.path.join(env["SNMPCONFPATH"], "snmp.conf")
        with open(path) as f:
            self.confs.append((f.read(), stat.S_IMODE(os.stat(path).st_mode)))
        self.dirs.append(env["SNMPCONFPATH"])


def test_the_channel_provides_ichannel_and_reboots():
    channel = PDUChannel(ChannelHost(task.Clock()))
    assert verifyObject(IChannel, channel)
    assert (channel.name, channel.operations) == ("pdu", frozenset({REBOOT}))


def test_reboot_sets_immediate_reboot_and_reads_the_outlet_back_with_the_community_in_a_private_conf():
    seen = SeenConf()
    tools = ScriptedTools(on_run=seen).answer("snmpset", out="3\n").answer("snmpget", out="2\n")

    d, story = reboot(tools, location())

    assert outcome(d) is True
    assert tools.argvs() == [
        ["snmpset", "-m", "", "-Oqv", "-t", "2", "-r", "2", "udp:pdu3.example.com:161", OID_12, "i", "3"],
        ["snmpget", "-m", "", "-Oqv", "-t", "2", "-r", "2", "udp:pdu3.example.com:161", OID_12]]
    assert not any(COMMUNITY in " ".join(argv) or COMMUNITY in str(env) for argv, env, _ in tools.runs)
    assert seen.confs == [(f'defVersion 2c\ndefCommunity "{COMMUNITY}"\n', 0o600)] * 2
    assert not os.path.exists(seen.dirs[0])  # removed once the reboot is over
    assert story == ["PDU pdu3.example.com:161 outlet 12 (AA12): set sPDUOutletCtl to immediateReboot (3) "
                     "over SNMP",
                     "PDU pdu3.example.com:161 outlet 12 (AA12): the outlet now reads off"]


def test_without_a_community_the_default_private_is_used_and_a_port_and_number_are_honoured():
    seen = SeenConf()
    tools = ScriptedTools(on_run=seen).answer("snmpset", out="3").answer("snmpget", out="1")
    where = SlaveLocation("bs1", channels={"pdu": {"host": "10.0.2.3", "port": 1161, "outlet": 4}})

    d, story = reboot(tools, where)

    assert outcome(d) is True
    assert tools.argvs()[0][8:10] == ["udp:10.0.2.3:1161", f"{OUTLET_CONTROL_OID}.4"]
    assert 'defCommunity "private"' in seen.confs[0][0]
    assert story[-1] == "PDU 10.0.2.3:1161 outlet 4: the outlet now reads on"


def test_a_pdu_that_does_not_answer_is_a_channel_error_naming_the_outlet():
    tools = ScriptedTools().answer("snmpset", code=1,
                                   err="Timeout: No Response from udp:pdu3.example.com:161.\n")

    d, story = reboot(tools, location())

    assert str(outcome(d)) == ("PDU pdu3.example.com:161 outlet 12 (AA12): snmpset failed: "
                               "Timeout: No Response from udp:pdu3.example.com:161.")
    assert story == [] and len(tools.runs) == 1


def test_a_refused_set_is_a_channel_error_with_the_agents_reason_and_never_the_community():
    tools = ScriptedTools().answer("snmpset", code=2, err=(
        "Created directory: /tmp/x/cert_indexes\nError in packet.\n"
        f"Reason: notWritable (That object does not support modification) [{COMMUNITY}]\n"))

    error = outcome(reboot(tools, location())[0])

    assert isinstance(error, ChannelError)
    assert str(error).endswith("snmpset failed: Error in packet. / Reason: notWritable (That object does "
                               "not support modification) [(secret)]")


def test_a_set_answered_with_another_value_is_a_channel_error():
    tools = ScriptedTools().answer("snmpset", out="No Such Instance currently exists at this OID\n")

    error = outcome(reboot(tools, location())[0])

    assert str(error).endswith("snmpset answered 'No Such Instance currently exists at this OID'")


def test_an_unreadable_outlet_after_the_set_is_told_but_the_reboot_was_sent():
    tools = ScriptedTools().answer("snmpset", out="3").answer("snmpget", code=1, err="Timeout: No Response\n")

    d, story = reboot(tools, location())

    assert outcome(d) is True
    assert story[-1] == ("PDU pdu3.example.com:161 outlet 12 (AA12): could not read the outlet back: "
                         "snmpget failed: Timeout: No Response")


def test_a_pdu_that_never_answers_fails_at_the_deadline_and_snmpset_is_stopped():
    clock = task.Clock()
    tools = ScriptedTools().hang("snmpset")

    d, _ = reboot(tools, location(), clock)
    clock.advance(DEADLINE_S)

    assert str(outcome(d)) == f"the PDU did not finish within {DEADLINE_S:g} s"
    assert tools.cancelled == [tools.argvs()[0]]


def test_a_master_without_net_snmp_says_so():
    tools = ScriptedTools().fail("snmpset", error=ToolMissing("snmpset is not installed on the master"))

    assert str(outcome(reboot(tools, location())[0])).endswith("snmpset is not installed on the master")


@pytest.mark.parametrize("outlet, per_infeed, number", [
    (12, None, 12), ("7", None, 7), ("AA12", None, 12), ("aa3", None, 3), ("AB3", 8, 11), ("AC1", 16, 33),
])
def test_outlet_names_map_to_apc_outlet_numbers(outlet, per_infeed, number):
    assert outlet_number(outlet, per_infeed) == number


@pytest.mark.parametrize("outlet, per_infeed, problem", [
    ("BA1", None, "is on tower B: an APC PDU is one tower (A)"),
    ("AB3", None, "is on infeed B: give outlets_per_infeed"),
    (0, None, "outlets are numbered from 1"),
    ("AA0", None, "outlets are numbered from 1"),
    ("left", None, "outlet must be an outlet number or a name like 'AA12'"),
    (True, None, "outlet must be an outlet number"),
])
def test_outlets_that_cannot_be_mapped_are_refused_saying_why(outlet, per_infeed, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        outlet_number(outlet, per_infeed)


def test_bad_settings_are_named_and_mozillas_port_for_an_outlet_gets_a_hint():
    problems = settings_problems({"fqdn": "pdu3", "port": "AA12", "community": "plain", "colour": 1})

    assert problems == [
        "unknown key 'colour' (allowed: community, fqdn, host, outlet, outlets_per_infeed, port)",
        "port must be a UDP port number, not 'AA12' (port is the PDU's SNMP port: name the outlet "
        "with 'outlet')",
        "community must be a secret",
        "outlet is required (a number, or a name like 'AA12')"]
    assert settings_problems({"outlet": 3}) == ["fqdn (or host), the PDU's address, is required"]
    assert settings_problems({"host": "p", "outlet": 3, "community": Secret("a\nb")}) == [
        "community must be one line of printable characters"]


def test_bad_settings_fail_the_reboot_without_running_a_tool():
    tools = ScriptedTools()

    error = outcome(reboot(tools, SlaveLocation("bs1", channels={"pdu": {"fqdn": "pdu3"}}))[0])

    assert str(error) == "bad pdu settings: outlet is required (a number, or a name like 'AA12')"
    assert tools.runs == []


def test_the_snmp_conf_quotes_the_community():
    assert snmp_conf(Secret('a "b" \\c')) == 'defVersion 2c\ndefCommunity "a \\"b\\" \\\\c"\n'


def test_configured_for_needs_the_pdu_address():
    channel = PDUChannel(ChannelHost(task.Clock()))

    assert channel.configured_for(location())
    assert not channel.configured_for(SlaveLocation("bs1", channels={"pdu": {"outlet": 3}}))
    assert not channel.configured_for(SlaveLocation("bs1"))


# -- run_tool, with real processes -----------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_run_tool_answers_what_the_tool_printed_and_its_exit_code():
    result = await run_tool(reactor, ["sh", "-c", "echo out; echo err >&2; exit 3"],
                            tool_environment(), 30)

    assert (result.code, result.out, result.err, result.ok) == (3, "out\n", "err\n", False)
    assert result.message == "err"


@pytest_twisted.ensureDeferred
async def test_run_tool_gives_the_tool_only_the_environment_it_is_given(monkeypatch):
    monkeypatch.setenv("BUILDFARM_UNRELATED_SECRET", "x")

    result = await run_tool(reactor, ["sh", "-c", "env"], tool_environment(IPMI_PASSWORD="pw"), 30)

    names = {line.split("=", 1)[0] for line in result.out.splitlines()}
    assert "IPMI_PASSWORD=pw" in result.out.splitlines()
    assert "BUILDFARM_UNRELATED_SECRET" not in names and {"LANG", "LC_ALL"} <= names


@pytest_twisted.ensureDeferred
async def test_run_tool_kills_a_tool_still_running_at_its_deadline(tmp_path):
    pidfile = tmp_path / "pid"

    with pytest.raises(defer.TimeoutError):
        await run_tool(reactor, ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"], tool_environment(), 0.5)

    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        for _ in range(200):  # the kill is sent; the process goes as soon as it is reaped
            os.kill(pid, 0)
            await task.deferLater(reactor, 0.05, lambda: None)


def test_run_tool_refuses_a_tool_that_is_not_installed():
    d = run_tool(reactor, ["no-such-tool-buildfarm"], tool_environment(), 30)

    assert str(outcome(d)) == "no-such-tool-buildfarm is not installed on the master"
