"""The bmc channel in memory: ipmitool scripted (argv, environment and answers), a Clock for
the deadline.  The real ipmi_sim BMC is in tests/integration/test_slaveapi_power_e2e.py."""

import pytest
from twisted.internet import task
from zope.interface.verify import verifyObject

from buildfarm.master.auth.secret import Secret
from buildfarm.master.slaveapi.channels.interfaces import REBOOT, UPTIME, ChannelError, IChannel
from buildfarm.master.slaveapi.channels.ipmi import IPMIChannel, settings_problems
from buildfarm.master.slaveapi.channels.powertools import ToolMissing
from buildfarm.master.slaveapi.inventory import SlaveLocation
from fixtures.channelhost import ChannelHost
from fixtures.scripted_tools import ScriptedTools, outcome, perform_reboot

PASSWORD = "ipmi-pw-not-to-be-seen"
DEADLINE_S = 60.0


def location(**bmc) -> SlaveLocation:
    settings = {"fqdn": "bs1-mgmt.example.com", "username": "admin", "password": Secret(PASSWORD), **bmc}
    return SlaveLocation("bs1", fqdn="bs1.example.com", channels={"bmc": settings})


def reboot(tools: ScriptedTools, where: SlaveLocation, clock=None):
    return perform_reboot(IPMIChannel, tools, where, DEADLINE_S, clock)


def test_the_channel_provides_ichannel_and_reboots():
    channel = IPMIChannel(ChannelHost(task.Clock()))
    assert verifyObject(IChannel, channel)
    assert (channel.name, channel.operations) == ("bmc", frozenset({REBOOT}))


def test_reboot_of_a_running_chassis_is_a_power_cycle_with_the_password_only_in_the_environment():
    tools = (ScriptedTools().answer("status", out="Chassis Power is on\n")
             .answer("cycle", out="Chassis Power Control: Cycle\n"))

    d, story = reboot(tools, location())

    assert outcome(d) is True
    assert tools.argvs() == [
        ["ipmitool", "-I", "lanplus", "-H", "bs1-mgmt.example.com", "-p", "623", "-U", "admin", "-E",
         "chassis", "power", "status"],
        ["ipmitool", "-I", "lanplus", "-H", "bs1-mgmt.example.com", "-p", "623", "-U", "admin", "-E",
         "chassis", "power", "cycle"]]
    assert all(env["IPMI_PASSWORD"] == PASSWORD for _, env, _ in tools.runs)
    assert not any(PASSWORD in " ".join(argv) for argv in tools.argvs())
    assert story == ["BMC bs1-mgmt.example.com:623: chassis power is on",
                     "BMC bs1-mgmt.example.com:623: IPMI chassis power cycle sent "
                     "(Chassis Power Control: Cycle)"]


def test_a_chassis_that_is_off_is_powered_on_instead():
    tools = (ScriptedTools().answer("status", out="Chassis Power is off\n")
             .answer("on", out="Chassis Power Control: Up/On\n"))

    d, story = reboot(tools, location(host="10.0.1.11", port=1623))

    assert outcome(d) is True
    assert tools.argvs()[1][-3:] == ["chassis", "power", "on"]
    assert "10.0.1.11" in tools.argvs()[1] and "1623" in tools.argvs()[1]
    assert story[-1] == ("BMC 10.0.1.11:1623: the chassis was off, powered it on "
                         "(Chassis Power Control: Up/On)")


def test_interface_and_cipher_suite_reach_ipmitool():
    tools = ScriptedTools().answer("status", out="Chassis Power is on").answer("cycle")

    assert outcome(reboot(tools, location(cipher_suite=3))[0]) is True
    assert tools.argvs()[0][1:3] == ["-I", "lanplus"] and tools.argvs()[0][10:12] == ["-C", "3"]
    lan = ScriptedTools().answer("status", out="Chassis Power is on").answer("cycle")
    assert outcome(reboot(lan, location(interface="lan", cipher_suite=3))[0]) is True
    assert lan.argvs()[0][1:3] == ["-I", "lan"] and "-C" not in lan.argvs()[0]  # -C is lanplus only


def test_an_ipmitool_failure_is_a_channel_error_with_its_words_and_never_the_password():
    tools = ScriptedTools().answer(
        "status", code=1, err=f"Error: Unable to establish IPMI v2 / RMCP+ session (tried {PASSWORD})\n")

    d, story = reboot(tools, location())

    error = outcome(d)
    assert isinstance(error, ChannelError)
    assert str(error) == ("BMC bs1-mgmt.example.com:623: ipmitool chassis power status failed: "
                          "Error: Unable to establish IPMI v2 / RMCP+ session (tried (secret))")
    assert story == [] and len(tools.runs) == 1  # no power command after a failed status


def test_a_refused_power_cycle_is_a_channel_error():
    tools = (ScriptedTools().answer("status", out="Chassis Power is on")
             .answer("cycle", code=1, err="Set Chassis Power Control to Cycle failed: Invalid data field\n"))

    d, story = reboot(tools, location())

    assert "ipmitool chassis power cycle failed: Set Chassis Power Control to Cycle failed" in str(outcome(d))
    assert story == ["BMC bs1-mgmt.example.com:623: chassis power is on"]


def test_an_answer_without_a_power_state_is_a_channel_error():
    tools = ScriptedTools().answer("status", out="Unexpected banner\n")

    error = outcome(reboot(tools, location())[0])

    assert isinstance(error, ChannelError) and "no power state" in str(error)


def test_a_bmc_that_does_not_answer_fails_at_the_deadline_and_ipmitool_is_stopped():
    clock = task.Clock()
    tools = ScriptedTools().hang("status")

    d, _ = reboot(tools, location(), clock)
    clock.advance(DEADLINE_S - 1)
    assert not d.called
    clock.advance(1)

    error = outcome(d)
    assert isinstance(error, ChannelError) and str(error) == f"the BMC did not finish within {DEADLINE_S:g} s"
    assert tools.cancelled == [tools.argvs()[0]]


def test_a_master_without_ipmitool_says_so():
    tools = ScriptedTools().fail("status", error=ToolMissing("ipmitool is not installed on the master"))

    assert str(outcome(reboot(tools, location())[0])) == "ipmitool is not installed on the master"


@pytest.mark.parametrize("settings, problem", [
    ({"username": "admin", "password": Secret("x")}, "fqdn (or host), the BMC's address, is required"),
    ({"fqdn": "b", "password": Secret("x")}, "username is required"),
    ({"fqdn": "b", "username": "admin"}, "password is required"),
    ({"fqdn": "b", "username": "a", "password": Secret("x"), "port": "623"},
     "port must be a UDP port number, not '623'"),
    ({"fqdn": "b", "username": "a", "password": Secret("x"), "interface": "open"},
     "interface must be one of lanplus, lan, not 'open'"),
    ({"fqdn": "b", "username": "a", "password": Secret("x"), "cipher_suite": "3"},
     "cipher_suite must be a number (ipmitool -C), not '3'"),
    ({"fqdn": "b", "username": "a", "password": Secret("x"), "pasword": "x"}, "unknown key 'pasword'"),
])
def test_bad_settings_are_named(settings, problem):
    assert any(p.startswith(problem) for p in settings_problems(settings)), settings_problems(settings)


def test_bad_settings_fail_the_reboot_saying_what_is_wrong_without_running_ipmitool():
    tools = ScriptedTools()
    where = SlaveLocation("bs1", channels={"bmc": {"fqdn": "bs1-mgmt", "password": Secret(PASSWORD)}})

    error = outcome(reboot(tools, where)[0])

    assert str(error) == "bad bmc settings: username is required" and tools.runs == []


def test_configured_for_needs_the_bmc_address():
    channel = IPMIChannel(ChannelHost(task.Clock()))

    assert channel.configured_for(location())
    assert channel.configured_for(SlaveLocation("bs1", channels={"bmc": {"host": "10.0.1.11"}}))
    assert not channel.configured_for(SlaveLocation("bs1", channels={"bmc": {"username": "admin"}}))
    assert not channel.configured_for(SlaveLocation("bs1", channels={"ssh": {"username": "cltbld"}}))
    assert not channel.configured_for(None)


def test_other_operations_are_refused():
    d = IPMIChannel(ChannelHost(task.Clock()), run=ScriptedTools()).perform(
        UPTIME, location(), print, task.Clock(), DEADLINE_S)

    assert str(outcome(d)) == "the bmc channel cannot uptime"
