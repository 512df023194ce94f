"""Where each slave's out-of-band channels are, from ``c['slaveapi']['slaves']``::

    c['slaveapi'] = {'port': 8081, 'slaves': {
        'bs1': {'fqdn': 'bs1.build.example.com', 'ip': '10.0.0.11', 'environment': 'prod',
                'ssh': {'username': 'cltbld', 'password': {'env': 'BS1_SSH_PASSWORD'}},
                'bmc': {'fqdn': 'bs1-mgmt.example.com', 'username': 'admin',
                        'password': {'file': 'secrets/bs1-ipmi'}},
                'pdu': {'fqdn': 'pdu3.example.com', 'outlet': 'AA12'}},
    }}

A channel's settings are plain values; secrets among them (any value written as
``{'file': ...}``/``{'env': ...}``, and any key naming a password, secret, token, passphrase
or community) become ``Secret``s and are shown only as ``"(secret)"``.
"""

from dataclasses import dataclass, field

from buildfarm.master.auth.secret import Secret, SecretError, is_secret_spec, resolve_secret

# The channels a slave may have (implemented as ``IChannel`` providers in channels/).
CHANNEL_NAMES = ("ssh", "bmc", "pdu", "mozpool", "bugzilla", "aws")
# Plain string settings of a slave: where it is, and what the original SlaveAPI's slavealloc
# and inventory said of it (purpose, pool, colo, the machine running its buildslave).
STRING_KEYS = ("fqdn", "ip", "environment", "purpose", "pool", "colo", "buildbotslave")
LOCATION_KEYS = frozenset({*STRING_KEYS, *CHANNEL_NAMES})
SECRET_WORDS = ("password", "passwd", "secret", "token", "passphrase", "community", "api_key")
SHOWN_SECRET = "(secret)"


@dataclass
class SlaveLocation:
    """One slave's address and channel settings."""

    name: str
    fqdn: str | None = None
    ip: str | None = None
    environment: str | None = None
    purpose: str | None = None
    pool: str | None = None
    colo: str | None = None
    buildbotslave: str | None = None  # the inventory name of the machine running its buildslave
    channels: dict[str, dict] = field(default_factory=dict)

    def public_channels(self) -> dict[str, dict]:
        """The channels with their settings, secrets replaced by ``"(secret)"``."""
        return {name: {k: SHOWN_SECRET if isinstance(v, Secret) else v for k, v in settings.items()}
                for name, settings in sorted(self.channels.items())}


def is_secret_key(key: str) -> bool:
    return any(word in key.lower() for word in SECRET_WORDS)


def validate_inventory(raw, basedir: str | None) -> tuple[dict[str, SlaveLocation], list[str]]:
    """The locations of ``c['slaveapi']['slaves']`` and every problem found in it."""
    if not isinstance(raw, dict):
        return {}, ["c['slaveapi']['slaves'] must map slave names to {'fqdn': ..., 'ssh': {...}}"]
    locations: dict[str, SlaveLocation] = {}
    problems: list[str] = []
    for name, entry in raw.items():
        if not isinstance(name, str) or not name:
            problems.append(f"c['slaveapi']['slaves']: slave name {name!r} must be a non-empty string")
            continue
        if not isinstance(entry, dict):
            problems.append(f"c['slaveapi']['slaves'][{name!r}] must be a dict")
            continue
        location, found = _location(name, entry, basedir)
        locations[name] = location
        problems += found
    for name, location in locations.items():
        if location.buildbotslave is not None and location.buildbotslave not in locations:
            problems.append(f"c['slaveapi']['slaves'][{name!r}]: buildbotslave {location.buildbotslave!r} "
                            "is not a slave of this inventory")
    return locations, problems


def _location(name: str, entry: dict, basedir: str | None) -> tuple[SlaveLocation, list[str]]:
    where = f"c['slaveapi']['slaves'][{name!r}]"
    problems = [f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(LOCATION_KEYS))})"
                for key in sorted(set(entry) - LOCATION_KEYS, key=str)]
    location = SlaveLocation(name)
    for key in STRING_KEYS:
        value = entry.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            problems.append(f"{where}: {key} must be a non-empty string")
        else:
            setattr(location, key, value)
    for channel in CHANNEL_NAMES:
        settings = entry.get(channel)
        if settings is None:
            continue
        if not isinstance(settings, dict) or not all(isinstance(k, str) for k in settings):
            problems.append(f"{where}: {channel} must be a dict of settings")
            continue
        resolved = {}
        for key, value in settings.items():
            if is_secret_spec(value) or (is_secret_key(key) and value is not None):
                try:
                    value = resolve_secret(value, basedir, f"{where}['{channel}']['{key}']")
                except SecretError as e:
                    problems.append(str(e))
                    continue
            resolved[key] = value
        location.channels[channel] = resolved
    problems += [f"{where}['{channel}']: {problem}"
                 for channel, problem in channel_problems(location, basedir)]
    return location, problems


def channel_problems(location: SlaveLocation, basedir: str | None) -> list[tuple[str, str]]:
    """``(channel, problem)`` for each channel setting its channel module would refuse, so that
    a bad inventory is reported when master.cfg loads rather than when an action runs."""
    from buildfarm.master.slaveapi.channels import ipmi, pdu, ssh
    from buildfarm.master.slaveapi.channels.interfaces import ChannelError

    found: list[tuple[str, str]] = []
    for channel, module in (("bmc", ipmi), ("pdu", pdu)):
        if channel in location.channels:
            found += [(channel, p) for p in module.settings_problems(location.channels[channel])]
    checks = [("ssh", lambda: ssh.ssh_target(location, basedir or "."))]
    if "aws" in location.channels:
        from buildfarm.master.slaveapi.channels import aws  # boto3 is imported only when used

        checks.append(("aws", lambda: aws.aws_settings(location)))
    for channel, check in checks:
        if channel in location.channels:
            try:
                check()
            except ChannelError as e:
                found.append((channel, str(e)))
    return found
