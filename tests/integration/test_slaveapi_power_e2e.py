"""The SlaveAPI's power channels end to end: a real master and slave, a real BMC (OpenIPMI's
ipmi_sim, whose chassis is the slave) and a real PDU (net-snmp's snmpd, whose outlet feeds
the slave), driven through the HTTP API as an on-call engineer does."""

import re

import pytest

from fixtures.daemons import free_port, wait_for
from fixtures.ipmi import IpmiBMC, free_udp_port
from fixtures.slaveapi import SlaveAPIClient, start_slaveapi_master
from fixtures.snmp import SnmpPDU

REBOOT_DEADLINE_S = 150.0
BMC_PASSWORD = "bmc-s3cret"
PDU_COMMUNITY = "pdu-s3cret"
SLAVE_OUTLET = 5


@pytest.fixture
def power(tmp_path):
    """The BMCs and PDUs a test starts, stopped before its fleet (so before the slaves)."""
    started = []
    yield started
    for device in reversed(started):
        device.stop()


def start_master(fleet, inventory: dict) -> tuple:
    return start_slaveapi_master(fleet, {"bs1": inventory})


def reboot(client: SlaveAPIClient) -> dict:
    """POST a reboot and poll it to its end; the finished result."""
    status, result = client.call("POST", "/slaves/bs1/actions/reboot", waittime="5")
    assert status in (200, 202), result
    path = f"/slaves/bs1/actions/reboot?requestid={result['requestid']}"
    return wait_for(lambda: (r := client.call("GET", path)[1])["state"] in (2, 3) and r,
                    "the reboot to finish", REBOOT_DEADLINE_S)


def closed_ssh_port() -> dict:
    return {"host": "127.0.0.1", "port": free_port(), "username": "cltbld", "password": "nope",
            "host_key_check": False, "connect_timeout": 5}


def test_reboot_escalates_past_a_failing_ssh_to_an_ipmi_power_cycle(fleet, power, tmp_path):
    bmc_port = free_udp_port()
    inventory = {"ssh": closed_ssh_port(),
                 "bmc": {"host": "127.0.0.1", "port": bmc_port, "username": "admin",
                         "password": BMC_PASSWORD, "cipher_suite": 3}}
    master, client = start_master(fleet, inventory)
    slave = fleet.slave(master, start=False)
    bmc = IpmiBMC.start(str(tmp_path), slave.basedir, password=BMC_PASSWORD, port=bmc_port)
    power.append(bmc)
    master.wait_attached("bs1")
    pid_before = wait_for(lambda: slave.pid, "the slave's pid file")

    result = reboot(client)

    text = result["text"]
    assert result["state"] == 2, text
    assert re.search(r"reboot command over ssh: (failed|skipped)", text), text
    assert "chassis power cycle through the IPMI BMC: trying" in text
    assert f"BMC 127.0.0.1:{bmc_port}: chassis power is on" in text
    assert "IPMI chassis power cycle sent" in text
    assert "verified: bs1 attached again" in text
    assert BMC_PASSWORD not in text
    assert bmc.power_offs() == 1 and bmc.power_ons() == 2  # the first start, and after the cycle
    assert wait_for(lambda: slave.pid, "the new slave's pid file") != pid_before
    assert master.slave("bs1")["connected"]


def test_pdu_reboot_when_the_slave_has_no_bmc(fleet, power, tmp_path):
    pdu_port = free_udp_port()
    inventory = {"pdu": {"host": "127.0.0.1", "port": pdu_port, "community": PDU_COMMUNITY,
                         "outlet": f"AA{SLAVE_OUTLET}"}}
    master, client = start_master(fleet, inventory)
    slave = fleet.slave(master)
    master.wait_attached("bs1")
    pid_before = slave.pid
    pdu = SnmpPDU.start(str(tmp_path), {SLAVE_OUTLET: slave.basedir}, community=PDU_COMMUNITY,
                        port=pdu_port)
    power.append(pdu)

    result = reboot(client)

    text = result["text"]
    assert result["state"] == 2, text
    assert "chassis power cycle through the IPMI BMC: skipped (the slave has no bmc channel)" in text
    assert f"PDU 127.0.0.1:{pdu_port} outlet {SLAVE_OUTLET} (AA{SLAVE_OUTLET}): set sPDUOutletCtl to " \
           "immediateReboot (3)" in text
    assert re.search(rf"\(AA{SLAVE_OUTLET}\): the outlet now reads (on|off)", text), text
    assert "verified: bs1 attached again" in text
    assert PDU_COMMUNITY not in text
    assert pdu.sets() == [(SLAVE_OUTLET, 3)]
    wait_for(pdu.helpers_done, "the PDU's power helper to finish")
    assert slave.pid != pid_before
    assert pdu.outlet_value(SLAVE_OUTLET) == 1


def test_a_bmc_refusing_its_password_fails_with_the_reason_and_the_pdu_reboots(fleet, power, tmp_path):
    bmc_port, pdu_port = free_udp_port(), free_udp_port()
    inventory = {"bmc": {"host": "127.0.0.1", "port": bmc_port, "username": "admin",
                         "password": "not-the-password", "cipher_suite": 3},
                 "pdu": {"host": "127.0.0.1", "port": pdu_port, "community": PDU_COMMUNITY,
                         "outlet": SLAVE_OUTLET}}
    master, client = start_master(fleet, inventory)
    slave = fleet.slave(master, start=False)
    bmc = IpmiBMC.start(str(tmp_path), slave.basedir, password=BMC_PASSWORD, port=bmc_port)
    power.append(bmc)
    pdu = SnmpPDU.start(str(tmp_path), {SLAVE_OUTLET: slave.basedir}, community=PDU_COMMUNITY,
                        port=pdu_port)
    power.append(pdu)
    master.wait_attached("bs1")

    result = reboot(client)

    text = result["text"]
    assert result["state"] == 2, text
    assert re.search(r"chassis power cycle through the IPMI BMC: failed: BMC 127\.0\.0\.1:\d+: "
                     r"ipmitool chassis power status failed: .*Unable to establish IPMI", text), text
    assert "power cycle of the PDU outlet over SNMP: trying" in text
    assert "verified: bs1 attached again" in text
    assert "not-the-password" not in text
    assert bmc.power_ons() == 1 and bmc.power_offs() == 0  # the BMC did nothing
    assert pdu.sets() == [(SLAVE_OUTLET, 3)]
    wait_for(pdu.helpers_done, "the PDU's power helper to finish")
