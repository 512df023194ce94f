"""The SlaveAPI's ssh channel end to end: a real master, a real slave and a real OpenSSH sshd on
loopback.  The slave's "machine" is reached through sshd; its reboot command is a script that
stops and starts the slave's buildslave (detached, so the ssh command returns), as a rebooting
machine would."""

import os
import stat

from fixtures.daemons import BIN_DIR, free_port, pid_alive, wait_for
from fixtures.slaveapi import start_slaveapi_master
from fixtures.sshd import sshd  # noqa: F401  (the fixture)

ACTION_DEADLINE_S = 150.0
SUCCESS, FAILURE = 2, 3


REBOOT_SCRIPT = """\
#!/bin/sh
# A "reboot" of the test machine: the slave's buildslave is stopped and started again, in its
# own session so that this ssh command returns at once.
setsid nohup sh -c '{buildslave} stop {basedir}; {buildslave} start {basedir}' \\
    >{root}/reboot.out 2>&1 </dev/null &
echo rebooting
"""


def start(fleet, sshd_server, slave_settings: dict, start_slave: bool = True):  # noqa: F811
    """A master whose inventory gives bs1 (and bs2) the ssh settings returned by
    ``slave_settings(slave basedir)``, and bs1's slave (started unless told)."""
    basedir = os.path.join(fleet.root, "slave-bs1-1")  # where fleet.slave() creates it
    inventory = {name: {"ssh": settings} for name, settings in slave_settings(basedir).items()}
    master, client = start_slaveapi_master(fleet, inventory, slavenames=("bs1", "bs2"))
    slave = fleet.slave(master, start=start_slave)
    assert slave.basedir == basedir
    if start_slave:
        master.wait_attached("bs1")
    return master, slave, client


def run_action(api, slave: str, action: str) -> dict:
    """POST the action and poll its result until it has finished."""
    status, result = api.call("POST", f"/slaves/{slave}/actions/{action}", waittime="5")
    assert status in (200, 202), result
    path = f"/slaves/{slave}/actions/{action}?requestid={result['requestid']}"
    return wait_for(lambda: (r := api.call("GET", path)[1])["state"] >= SUCCESS and r,
                    f"{action} of {slave} to finish", ACTION_DEADLINE_S)


def reboot_script(root: str, basedir: str) -> str:
    path = os.path.join(root, "reboot-bs1.sh")
    with open(path, "w") as f:
        f.write(REBOOT_SCRIPT.format(buildslave=os.path.join(BIN_DIR, "buildslave"), basedir=basedir,
                                     root=root))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


def test_reboot_through_ssh_is_verified_by_the_slave_attaching_again(fleet, sshd):  # noqa: F811
    script_of = {}

    def settings(basedir):
        script_of["bs1"] = reboot_script(fleet.root, basedir)
        return {"bs1": sshd.settings(basedir=basedir, reboot_command=script_of["bs1"])}

    master, slave, api = start(fleet, sshd, settings)
    first_pid = slave.pid
    result = run_action(api, "bs1", "reboot")
    assert result["state"] == SUCCESS, result["text"]
    text = result["text"]
    assert "first, a graceful shutdown of the buildslave through the master" in text
    assert "confirmed from its twistd.log over ssh: bs1 shut down" in text
    assert f"reboot command over ssh: trying\nssh {sshd.username}@127.0.0.1:{sshd.port}: running " \
           f"'{script_of['bs1']}'" in text
    assert "verified: bs1 attached again from 127.0.0.1:" in text
    assert not pid_alive(first_pid) and slave.pid != first_pid
    assert master.slave("bs1")["connected"]


def test_shutdown_buildslave_is_confirmed_from_twistd_log_over_ssh(fleet, sshd):  # noqa: F811
    master, slave, api = start(fleet, sshd, lambda basedir: {"bs1": sshd.settings(basedir=basedir)})
    pid = slave.pid
    result = run_action(api, "bs1", "shutdown_buildslave")
    assert result["state"] == SUCCESS, result["text"]
    assert "asked the master for a graceful shutdown of bs1" in result["text"]
    assert "confirmed from its twistd.log over ssh: bs1 shut down ('master requested shutdown; " \
           "stopping')" in result["text"]
    assert result["text"].rstrip().endswith("Server Shut Down.")
    wait_for(lambda: not pid_alive(pid), "the slave process to end")
    assert "Server Shut Down." in slave.log_text()


def test_uptime_and_last_activity_over_ssh(fleet, sshd):  # noqa: F811
    master, slave, api = start(fleet, sshd, lambda basedir: {"bs1": sshd.settings(basedir=basedir)})
    result = run_action(api, "bs1", "buildslave_uptime")
    assert result["state"] == SUCCESS, result["text"]
    with open("/proc/uptime") as f:
        assert abs(result["data"]["uptime"] - float(f.read().split()[0])) < 60
    assert result["story"].endswith(" s (read over ssh)") and "through its builder" not in result["story"]
    assert result["text"] == result["data"]["uptime"]  # the original SlaveAPI's text

    assert run_action(api, "bs1", "shutdown_buildslave")["state"] == SUCCESS
    activity = run_action(api, "bs1", "get_last_activity")
    assert activity["state"] == SUCCESS, activity["text"]
    assert activity["data"]["last_state"] == "stopped" and activity["data"]["last_activity_seconds"] < 60
    assert "its twistd.log (over ssh) says stopped" in activity["story"]
    assert activity["text"] == activity["data"]


def test_a_failing_ssh_fails_the_action_with_the_reason(fleet, sshd):  # noqa: F811
    closed_port = free_port()
    wrong_key = os.path.join(sshd.root, "ssh_host_ed25519_key")  # a key sshd does not accept

    def settings(basedir):
        return {"bs1": sshd.settings(basedir=basedir, port=closed_port),
                "bs2": sshd.settings(key=wrong_key)}

    _, _, api = start(fleet, sshd, settings, start_slave=False)
    uptime = run_action(api, "bs1", "buildslave_uptime")
    assert uptime["state"] == FAILURE
    assert f"the uptime of bs1 over ssh failed: ssh {sshd.username}@127.0.0.1:{closed_port}: " \
           "connection refused" in uptime["text"]
    reboot = run_action(api, "bs2", "reboot")
    assert reboot["state"] == FAILURE
    assert f"reboot command over ssh: failed: ssh {sshd.username}@127.0.0.1:{sshd.port}: authentication " \
           f"as {sshd.username} failed (key {wrong_key})" in reboot["text"]
    assert "no reboot method worked" in reboot["text"]
