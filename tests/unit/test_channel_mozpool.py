"""The Mozpool channel against the Mozpool stand-in, in memory (treq's StubTreq), and its
failures: an unknown device, refused credentials, an unreachable or silent Mozpool."""

import base64

import pytest
import pytest_twisted
from treq.testing import StubTreq
from twisted.internet import defer, reactor, task
from twisted.web.resource import Resource
from zope.interface.verify import verifyObject

from buildfarm.master.auth.secret import Secret
from buildfarm.master.slaveapi.channels.interfaces import REBOOT, UPTIME, ChannelError, IChannel
from buildfarm.master.slaveapi.channels.mozpool import MozpoolChannel
from buildfarm.master.slaveapi.inventory import SlaveLocation
from fixtures.channelhost import ChannelHost
from fixtures.daemons import free_port
from fixtures.mozpool import POWER_CYCLING, MozpoolStandIn

URL = "http://mobile-imaging-001.test"
DEADLINE_S = 30.0


def location(**settings) -> SlaveLocation:
    return SlaveLocation("panda-0042", channels={"mozpool": {"url": URL, **settings}})


def channel_for(resource) -> MozpoolChannel:
    return MozpoolChannel(runner=ChannelHost(task.Clock()), http=StubTreq(resource))


async def reboot(channel, where, clock=None, deadline_s=DEADLINE_S) -> tuple[object, list[str]]:
    lines: list[str] = []
    result = await channel.perform(REBOOT, where, lines.append, clock or task.Clock(), deadline_s)
    return result, lines


def test_the_channel_provides_ichannel_and_knows_when_it_is_configured():
    channel = MozpoolChannel(runner=ChannelHost(task.Clock()))
    assert verifyObject(IChannel, channel)
    assert channel.operations == frozenset({REBOOT})
    assert channel.configured_for(location())
    assert not channel.configured_for(SlaveLocation("bs1", channels={"mozpool": {"device": "x"}}))
    assert not channel.configured_for(SlaveLocation("bs1"))


@pytest_twisted.ensureDeferred
async def test_reboot_posts_an_empty_power_cycle_for_the_slaves_device_and_tells_its_state():
    standin = MozpoolStandIn({"panda-0042": {}})
    result, lines = await reboot(channel_for(standin.resource()), location())
    assert result is True
    posts = [call for call in standin.log.calls if call["method"] == "POST"]
    assert [(c["path"], c["body"]) for c in posts] == [("/api/device/panda-0042/power-cycle/", {})]
    assert lines == ["Mozpool: device panda-0042 is ready",
                     "Mozpool accepted the power cycle of device panda-0042",
                     "Mozpool: device panda-0042 is now ready"]


@pytest_twisted.ensureDeferred
async def test_reboot_uses_the_inventory_device_credentials_and_pxe_config():
    standin = MozpoolStandIn({"panda-0001": {}}, username="relengbot", password="hunter2")
    where = location(device="panda-0001", username="relengbot", password=Secret("hunter2"),
                     pxe_config="android-4.0")
    result, lines = await reboot(channel_for(standin.resource()), where)
    assert result is True
    post = next(call for call in standin.log.calls if call["method"] == "POST")
    assert post["body"] == {"pxe_config": "android-4.0"}
    assert post["headers"]["Authorization"] == "Basic " + base64.b64encode(b"relengbot:hunter2").decode()
    assert "(PXE config android-4.0)" in lines[1]
    assert not any("hunter2" in line for line in lines)


@pytest_twisted.ensureDeferred
async def test_an_unknown_device_fails_saying_mozpool_does_not_know_it():
    standin = MozpoolStandIn({"other": {}})
    with pytest.raises(ChannelError, match="Mozpool does not know the device .*404"):
        await reboot(channel_for(standin.resource()), location())


@pytest_twisted.ensureDeferred
async def test_refused_credentials_fail_without_showing_the_password():
    standin = MozpoolStandIn({"panda-0042": {}}, username="relengbot", password="right")
    where = location(username="relengbot", password=Secret("wrong-password"))
    with pytest.raises(ChannelError) as caught:
        await reboot(channel_for(standin.resource()), where)
    assert "refused the credentials" in str(caught.value) and "401" in str(caught.value)
    assert "wrong-password" not in str(caught.value)


class Redirecting(Resource):
    """Mozpool's deviceredirect: this server sends the device's calls to its own server."""

    isLeaf = True

    def __init__(self, owner):
        super().__init__()
        self.owner = owner

    def render(self, request):
        if request.getHeader("host") == "mobile-imaging-001.test":
            request.setResponseCode(302)
            request.setHeader(b"location", b"http://mobile-imaging-002.test" + request.uri)
            return b""
        return self.owner.resource().render(request)


@pytest_twisted.ensureDeferred
async def test_a_redirect_to_the_devices_imaging_server_is_followed():
    standin = MozpoolStandIn({"panda-0042": {}})
    result, lines = await reboot(channel_for(Redirecting(standin)), location())
    assert result is True
    assert "managed by http://mobile-imaging-002.test/api/device/panda-0042/power-cycle/" in lines[0]
    assert [c["method"] for c in standin.log.calls] == ["POST"]  # the state calls were redirected too


class Silent:
    """An HTTP client whose calls are never answered (a Mozpool that accepted and hung)."""

    def request(self, method, url, **kwargs):
        return defer.Deferred()


@pytest_twisted.ensureDeferred
async def test_a_silent_mozpool_fails_at_the_deadline():
    clock = task.Clock()
    channel = MozpoolChannel(runner=ChannelHost(clock), http=Silent())
    d = defer.ensureDeferred(reboot(channel, location(), clock, deadline_s=20))
    clock.advance(19)
    assert not d.called
    clock.advance(2)
    with pytest.raises(ChannelError, match="no answer within 20 s"):
        await d


@pytest_twisted.ensureDeferred
async def test_an_unreachable_mozpool_fails_saying_so():
    channel = MozpoolChannel(runner=ChannelHost(reactor))  # real treq and reactor: nothing listens there
    where = SlaveLocation("bs1", channels={"mozpool": {"url": f"http://127.0.0.1:{free_port()}"}})
    with pytest.raises(ChannelError, match="cannot reach Mozpool at http://127.0.0.1:.*refused"):
        await channel.perform(REBOOT, where, lambda line: None, reactor, DEADLINE_S)


@pytest_twisted.ensureDeferred
async def test_other_operations_are_refused():
    with pytest.raises(ChannelError, match="cannot uptime"):
        clock = task.Clock()
        await MozpoolChannel(runner=ChannelHost(clock)).perform(UPTIME, location(), print, clock, 1)


def test_the_standin_reports_power_cycling_until_its_command_ends():
    standin = MozpoolStandIn({"d": {"command": "true"}}, reactor=FakeSpawner())
    stub = StubTreq(standin.resource())
    response = stub.post("http://m/api/device/d/power-cycle", json={})
    assert response.result.code == 200
    assert standin.devices["d"]["state"] == POWER_CYCLING
    standin.reactor.finish(0)
    assert standin.devices["d"]["state"] == "ready"


class FakeSpawner:
    def spawnProcess(self, protocol, executable, args, env=None, childFDs=None):  # noqa: N802
        self.protocol, self.args = protocol, args

    def finish(self, code):
        self.protocol.done(code)
