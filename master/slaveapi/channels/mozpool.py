"""``MozpoolChannel``: power-cycle a slave's device through Mozpool's REST API.

Inventory (``c['slaveapi']['slaves'][name]['mozpool']``)::

    'mozpool': {'url': 'http://mobile-imaging-001.example.com',  # the device's imaging server
                'device': 'panda-0042',               # default: the slave's name
                'username': 'relengbot',              # optional HTTP basic, for a proxy in front
                'password': {'file': 'secrets/mozpool'},
                'pxe_config': 'android-4.0',          # optional: boot this PXE config
                'boot_config': '{"b2gbase": "..."}'}  # optional, stored for the device

REBOOT is ``POST {url}/api/device/{device}/power-cycle/`` with a JSON body (``{}``, or the
optional ``pxe_config``/``boot_config``); Mozpool answers 200 ``{}`` and power-cycles the
device in the background.  A 302 (the device belongs to another imaging server) is followed.
The device's state from ``GET {url}/api/device/{device}/state/`` is told before and after,
when Mozpool gives it.  Whether the machine came back is the reboot action's business.
"""

import treq
from twisted.internet import defer
from zope.interface import implementer

from buildfarm.master.slaveapi.channels.interfaces import REBOOT, ChannelError, IChannel
from buildfarm.master.slaveapi.channels.rest import http_call, revealed, with_deadline

SERVICE = "Mozpool"
MAX_REDIRECTS = 3
BODY_KEYS = ("pxe_config", "boot_config")


@implementer(IChannel)
class MozpoolChannel:
    """Power cycles through Mozpool (``reboot``)."""

    name = "mozpool"
    operations = frozenset({REBOOT})

    def __init__(self, runner, http=None):
        self.runner = runner
        self.http = http or treq

    def configured_for(self, location) -> bool:
        url = location.channels.get(self.name, {}).get("url")
        return isinstance(url, str) and url.startswith(("http://", "https://"))

    def perform(self, operation, location, say, clock, deadline_s, **kwargs):
        if operation != REBOOT:
            return defer.fail(ChannelError(f"the mozpool channel cannot {operation}"))
        settings = location.channels[self.name]
        device = settings.get("device") or location.name
        return with_deadline(self._power_cycle(settings, device, say), deadline_s, clock,
                             f"power cycle of {device} through Mozpool")

    def _options(self, settings: dict) -> dict:
        options = {}
        if settings.get("username"):
            options["auth"] = (settings["username"], revealed(settings.get("password")) or "")
        return options

    async def _power_cycle(self, settings: dict, device: str, say) -> bool:
        base = settings["url"].rstrip("/")
        options = self._options(settings)
        before = await self._state(base, device, options)
        if before is not None:
            say(f"Mozpool: device {device} is {before}")
        body = {key: settings[key] for key in BODY_KEYS if settings.get(key)}
        url = f"{base}/api/device/{device}/power-cycle/"
        for _ in range(MAX_REDIRECTS + 1):
            answer = await http_call(self.http, "POST", url, SERVICE, json=body, **options)
            if answer.status not in (301, 302, 303, 307, 308) or not answer.location:
                break
            say(f"Mozpool: device {device} is managed by {answer.location}; asking there")
            url = answer.location
        else:
            raise ChannelError(f"Mozpool redirected the power cycle of {device} "
                               f"more than {MAX_REDIRECTS} times")
        if answer.status != 200:
            raise ChannelError(_refusal(answer, f"the power cycle of device {device}"))
        say(f"Mozpool accepted the power cycle of device {device}"
            + (f" (PXE config {body['pxe_config']})" if "pxe_config" in body else ""))
        after = await self._state(base, device, options)
        if after is not None:
            say(f"Mozpool: device {device} is now {after}")
        return True

    async def _state(self, base: str, device: str, options: dict) -> str | None:
        """The device's Mozpool state, or None when Mozpool does not tell it."""
        try:
            answer = await http_call(self.http, "GET", f"{base}/api/device/{device}/state/", SERVICE,
                                     **options)
        except ChannelError:
            return None
        value = answer.json() if answer.status == 200 else None
        state = value.get("state") if isinstance(value, dict) else None
        return state if isinstance(state, str) else None


def _refusal(answer, what: str) -> str:
    if answer.status == 404:
        return f"Mozpool does not know the device ({what} answered 404 {answer.shown_body()!r})"
    if answer.status in (401, 403):
        return f"Mozpool refused the credentials ({what} answered {answer.status})"
    return f"Mozpool answered {answer.status} to {what}: {answer.shown_body()!r}"
