"""``IPMIChannel``: the slave machine's BMC, through ``ipmitool`` over the LAN (inventory ``bmc``).

The slave's inventory entry says where its BMC is::

    'bmc': {'fqdn': 'bs1-mgmt.example.com',         # or 'host': '10.0.1.11' (required)
            'port': 623,                            # optional, UDP (default 623)
            'username': 'admin',                    # required
            'password': {'file': 'secrets/bs1-ipmi'},  # required, a secret
            'interface': 'lanplus',                 # optional: lanplus (IPMI 2.0) or lan (1.5)
            'cipher_suite': 3}                      # optional: ipmitool -C (lanplus only)

``reboot`` reads the chassis power state, then asks for a chassis power cycle (a chassis that
is off is powered on instead) and tells both in the story.  ipmitool gets the password
through its environment (``-E``, ``IPMI_PASSWORD``), so it is in no argv and no log.
Give ``cipher_suite`` when the BMC does not answer "Get Channel Cipher Suites" (ipmitool
then waits ten seconds before it falls back).
"""

import re
from dataclasses import dataclass

from buildfarm.master.auth.secret import Secret
from buildfarm.master.slaveapi.channels.interfaces import ChannelError
from buildfarm.master.slaveapi.channels.powertools import (
    PowerToolChannel,
    ToolMissing,
    hide_secret,
    one_line,
    tool_environment,
)

TOOL = "ipmitool"
DEFAULT_PORT = 623
DEFAULT_INTERFACE = "lanplus"
INTERFACES = ("lanplus", "lan")
SETTINGS_KEYS = frozenset({"fqdn", "host", "port", "username", "password", "interface", "cipher_suite"})
POWER_STATE = re.compile(r"Chassis Power is (on|off)", re.IGNORECASE)


@dataclass(frozen=True)
class BMCAddress:
    """A BMC's address and credentials, read from the slave's ``bmc`` settings."""

    host: str
    port: int
    username: str
    password: Secret
    interface: str = DEFAULT_INTERFACE
    cipher_suite: int | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def settings_problems(settings: dict) -> list[str]:
    """What is wrong with a slave's ``bmc`` settings (empty when they can be used)."""
    problems = [f"unknown key {key!r} (allowed: {', '.join(sorted(SETTINGS_KEYS))})"
                for key in sorted(set(settings) - SETTINGS_KEYS)]
    host = settings.get("host", settings.get("fqdn"))
    if not isinstance(host, str) or not host:
        problems.append("fqdn (or host), the BMC's address, is required")
    port = settings.get("port", DEFAULT_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        problems.append(f"port must be a UDP port number, not {port!r}")
    username = settings.get("username")
    if not isinstance(username, str) or not username:
        problems.append("username is required")
    if not isinstance(settings.get("password"), Secret):
        problems.append("password is required")
    if settings.get("interface", DEFAULT_INTERFACE) not in INTERFACES:
        problems.append(f"interface must be one of {', '.join(INTERFACES)}, "
                        f"not {settings.get('interface')!r}")
    cipher = settings.get("cipher_suite")
    if cipher is not None and (isinstance(cipher, bool) or not isinstance(cipher, int) or cipher < 0):
        problems.append(f"cipher_suite must be a number (ipmitool -C), not {cipher!r}")
    return problems


def bmc_address(settings: dict) -> BMCAddress:
    """The ``BMCAddress`` of a slave's ``bmc`` settings; ``ChannelError`` saying what is wrong."""
    problems = settings_problems(settings)
    if problems:
        raise ChannelError("bad bmc settings: " + "; ".join(problems))
    return BMCAddress(settings.get("host", settings.get("fqdn")), settings.get("port", DEFAULT_PORT),
                      settings["username"], settings["password"],
                      settings.get("interface", DEFAULT_INTERFACE), settings.get("cipher_suite"))


def ipmitool_argv(bmc: BMCAddress, *command: str) -> list[str]:
    """ipmitool's command line for ``command`` on ``bmc``; the password is read from the environment."""
    argv = [TOOL, "-I", bmc.interface, "-H", bmc.host, "-p", str(bmc.port), "-U", bmc.username, "-E"]
    if bmc.cipher_suite is not None and bmc.interface == "lanplus":
        argv += ["-C", str(bmc.cipher_suite)]
    return argv + list(command)


class IPMIChannel(PowerToolChannel):
    """Power control of the slave machine through its BMC (IPMI over LAN, with ipmitool)."""

    name = "bmc"
    device = "the BMC"

    async def _reboot(self, location, say, deadline_s: float) -> bool:
        bmc = bmc_address(location.channels.get(self.name, {}))
        status = await self._ipmitool(bmc, deadline_s, "chassis", "power", "status")
        found = POWER_STATE.search(status)
        if found is None:
            raise ChannelError(f"BMC {bmc}: no power state in ipmitool's answer {status.strip()!r}")
        state = found.group(1).lower()
        say(f"BMC {bmc}: chassis power is {state}")
        if state == "off":
            answer = await self._ipmitool(bmc, deadline_s, "chassis", "power", "on")
            say(f"BMC {bmc}: the chassis was off, powered it on ({one_line(answer) or 'no output'})")
        else:
            answer = await self._ipmitool(bmc, deadline_s, "chassis", "power", "cycle")
            say(f"BMC {bmc}: IPMI chassis power cycle sent ({one_line(answer) or 'no output'})")
        return True

    async def _ipmitool(self, bmc: BMCAddress, timeout_s: float, *command: str) -> str:
        argv = ipmitool_argv(bmc, *command)
        env = tool_environment(IPMI_PASSWORD=bmc.password.reveal())
        try:
            result = await self._run(self.runner.reactor, argv, env, timeout_s)
        except ToolMissing as e:
            raise ChannelError(str(e)) from None
        if not result.ok:
            message = hide_secret(result.message, bmc.password)
            raise ChannelError(f"BMC {bmc}: ipmitool {' '.join(command)} failed: {message}")
        return result.out

