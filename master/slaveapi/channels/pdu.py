"""``PDUChannel``: the outlet of an APC-style switched PDU that feeds the slave (inventory ``pdu``).

The slave's inventory entry says which outlet of which PDU::

    'pdu': {'fqdn': 'pdu3.example.com',   # or 'host': '10.0.2.3' (required)
            'port': 161,                  # optional, the PDU's SNMP UDP port (default 161)
            'community': {'env': 'PDU_COMMUNITY'},  # optional secret, SNMP v2c (default 'private')
            'outlet': 'AA12',             # required: an outlet number, or a Mozilla-style name
            'outlets_per_infeed': 8}      # needed only for names on an infeed other than A

``reboot`` sets ``sPDUOutletCtl.<outlet>`` (PowerNet-MIB, .1.3.6.1.4.1.318.1.1.4.4.2.1.3) to
``immediateReboot`` (3) with net-snmp's ``snmpset -v2c``, reads the outlet back with
``snmpget`` and tells both in the story.

Outlet names.  Mozilla's inventory names an outlet ``<tower><infeed><number>``, e.g. ``AA12``
(tower A, infeed A, outlet 12), as its Sentry PDUs count them.  An APC PDU is one tower whose
outlets are numbered 1..N across its banks, so a name maps to an outlet number as:
tower must be ``A``; infeed ``A`` is outlets 1.., infeed ``B`` follows the last outlet of
infeed A, and so on: number = (infeed - 1) * ``outlets_per_infeed`` + outlet.  So ``AA12`` is
outlet 12, and ``AB3`` with ``outlets_per_infeed: 8`` is outlet 11.  A plain number (or a
string of digits) is the outlet number itself.

The community is a secret: the tools read it from a private ``snmp.conf`` (``defCommunity``)
in a temporary directory named by ``SNMPCONFPATH``, so it is in no argv (``ps`` shows argv to
every user) and no log; the directory is removed when the operation ends.
"""

import os
import re
import shutil
import tempfile
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

DEFAULT_PORT = 161
DEFAULT_COMMUNITY = "private"
SETTINGS_KEYS = frozenset({"fqdn", "host", "port", "community", "outlet", "outlets_per_infeed"})
OUTLET_CONTROL_OID = ".1.3.6.1.4.1.318.1.1.4.4.2.1.3"  # PowerNet-MIB::sPDUOutletCtl
IMMEDIATE_REBOOT = 3
OUTLET_STATES = {1: "on", 2: "off", 3: "rebooting", 4: "on (delayed)", 5: "off (delayed)",
                 6: "rebooting (delayed)"}
OUTLET_NAME = re.compile(r"^([A-Z])([A-Z])(\d+)$")
SNMP_TIMEOUT_S = 2    # snmpset/snmpget -t, per attempt
SNMP_RETRIES = 2      # snmpset/snmpget -r
# net-snmp notes it made its persistent directory (our temporary one): not an error.
TOOL_NOISE = re.compile(r"^Created directory: .*$", re.MULTILINE)


@dataclass(frozen=True)
class PDUOutlet:
    """One outlet of one PDU, read from a slave's ``pdu`` settings."""

    host: str
    port: int
    community: Secret
    outlet: int
    label: str  # as the inventory names it

    def __str__(self) -> str:
        named = "" if self.label == str(self.outlet) else f" ({self.label})"
        return f"PDU {self.host}:{self.port} outlet {self.outlet}{named}"

    @property
    def agent(self) -> str:
        """The net-snmp transport address of the PDU."""
        if ":" in self.host:
            return f"udp6:[{self.host}]:{self.port}"
        return f"udp:{self.host}:{self.port}"

    @property
    def oid(self) -> str:
        return f"{OUTLET_CONTROL_OID}.{self.outlet}"


def outlet_number(outlet, outlets_per_infeed=None) -> int:
    """The APC outlet number of an inventory ``outlet`` (see the module's docstring); ValueError."""
    if isinstance(outlet, int) and not isinstance(outlet, bool):
        number = outlet
    elif isinstance(outlet, str) and outlet.strip().isdigit():
        number = int(outlet)
    elif isinstance(outlet, str) and (name := OUTLET_NAME.match(outlet.strip().upper())):
        tower, infeed, number = name.group(1), ord(name.group(2)) - ord("A"), int(name.group(3))
        if tower != "A":
            raise ValueError(f"outlet {outlet!r} is on tower {tower}: an APC PDU is one tower (A); "
                             "give the PDU of that tower its own fqdn")
        if infeed:
            if isinstance(outlets_per_infeed, bool) or not isinstance(outlets_per_infeed, int) \
                    or outlets_per_infeed < 1:
                raise ValueError(f"outlet {outlet!r} is on infeed {name.group(2)}: give "
                                 "outlets_per_infeed (how many outlets infeed A has)")
            number += infeed * outlets_per_infeed
    else:
        raise ValueError(f"outlet must be an outlet number or a name like 'AA12', not {outlet!r}")
    if number < 1:
        raise ValueError(f"outlet {outlet!r}: outlets are numbered from 1")
    return number


def settings_problems(settings: dict) -> list[str]:
    """What is wrong with a slave's ``pdu`` settings (empty when they can be used)."""
    problems = [f"unknown key {key!r} (allowed: {', '.join(sorted(SETTINGS_KEYS))})"
                for key in sorted(set(settings) - SETTINGS_KEYS)]
    host = settings.get("host", settings.get("fqdn"))
    if not isinstance(host, str) or not host:
        problems.append("fqdn (or host), the PDU's address, is required")
    port = settings.get("port", DEFAULT_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        hint = (" (port is the PDU's SNMP port: name the outlet with 'outlet')"
                if isinstance(port, str) and OUTLET_NAME.match(port.upper()) else "")
        problems.append(f"port must be a UDP port number, not {port!r}{hint}")
    community = settings.get("community")
    if community is not None and not isinstance(community, Secret):
        problems.append("community must be a secret")
    elif isinstance(community, Secret) and not _usable_community(community.reveal()):
        problems.append("community must be one line of printable characters")
    if "outlet" not in settings:
        problems.append("outlet is required (a number, or a name like 'AA12')")
    else:
        try:
            outlet_number(settings["outlet"], settings.get("outlets_per_infeed"))
        except ValueError as e:
            problems.append(str(e))
    return problems


def pdu_outlet(settings: dict) -> PDUOutlet:
    """The ``PDUOutlet`` of a slave's ``pdu`` settings; ``ChannelError`` saying what is wrong."""
    problems = settings_problems(settings)
    if problems:
        raise ChannelError("bad pdu settings: " + "; ".join(problems))
    return PDUOutlet(settings.get("host", settings.get("fqdn")), settings.get("port", DEFAULT_PORT),
                     settings.get("community") or Secret(DEFAULT_COMMUNITY, "the default"),
                     outlet_number(settings["outlet"], settings.get("outlets_per_infeed")),
                     str(settings["outlet"]))


def _usable_community(value: str) -> bool:
    return bool(value) and value.isprintable()


def snmp_conf(community: Secret) -> str:
    """The private snmp.conf that gives the tools the community and the SNMP version."""
    quoted = community.reveal().replace("\\", "\\\\").replace('"', '\\"')
    return f'defVersion 2c\ndefCommunity "{quoted}"\n'


def snmp_argv(tool: str, outlet: PDUOutlet, *value: str) -> list[str]:
    """snmpset/snmpget's command line on the outlet's control OID (no community: see snmp_conf)."""
    return [tool, "-m", "", "-Oqv", "-t", str(SNMP_TIMEOUT_S), "-r", str(SNMP_RETRIES),
            outlet.agent, outlet.oid, *value]


class PDUChannel(PowerToolChannel):
    """Power cycles the slave machine's PDU outlet over SNMP (APC PowerNet-MIB)."""

    name = "pdu"
    device = "the PDU"

    async def _reboot(self, location, say, deadline_s: float) -> bool:
        outlet = pdu_outlet(location.channels.get(self.name, {}))
        confdir = tempfile.mkdtemp(prefix="buildfarm-snmp-")
        try:
            with open(os.open(os.path.join(confdir, "snmp.conf"), os.O_WRONLY | os.O_CREAT, 0o600),
                      "w") as f:
                f.write(snmp_conf(outlet.community))
            # The conf dir is also net-snmp's persistent directory, so nothing is written elsewhere.
            env = tool_environment(SNMPCONFPATH=confdir, SNMP_PERSISTENT_DIR=confdir)
            try:
                await self._snmp(outlet, env, deadline_s, "snmpset", "i", str(IMMEDIATE_REBOOT))
            except ChannelError as e:
                raise ChannelError(f"{outlet}: {e}") from None
            say(f"{outlet}: set sPDUOutletCtl to immediateReboot ({IMMEDIATE_REBOOT}) over SNMP")
            try:
                state = await self._snmp(outlet, env, deadline_s, "snmpget")
            except ChannelError as e:
                say(f"{outlet}: could not read the outlet back: {e}")
            else:
                say(f"{outlet}: the outlet now reads {OUTLET_STATES.get(state, state)}")
        finally:
            shutil.rmtree(confdir, ignore_errors=True)
        return True

    async def _snmp(self, outlet: PDUOutlet, env: dict, timeout_s: float, tool: str, *value: str) -> int:
        """The outlet state ``tool`` answers (snmpset echoes what it set); ChannelError otherwise."""
        try:
            result = await self._run(self.runner.reactor, snmp_argv(tool, outlet, *value), env, timeout_s)
        except ToolMissing as e:
            raise ChannelError(str(e)) from None
        said = one_line(TOOL_NOISE.sub("", result.err)) or one_line(result.out) or result.message
        said = hide_secret(said, outlet.community)
        if not result.ok:
            raise ChannelError(f"{tool} failed: {said}")
        state = _integer(result.out)
        if state is None or value and str(state) != value[-1]:
            raise ChannelError(f"{tool} answered {said!r}")
        return state


def _integer(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else None
