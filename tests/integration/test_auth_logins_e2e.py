"""Slave logins limited on a real master: a PB client guessing bs1's password from another
loopback address is refused once over the limit, while the real slave process, restarted,
attaches again at once from its usual address."""

import pytest
import pytest_twisted
from twisted.cred.credentials import UsernamePassword
from twisted.internet import reactor
from twisted.spread import pb

from fixtures.daemons import run_cli, wait_for

pytestmark = pytest.mark.integration

GUESSER_ADDRESS = "127.0.0.2"  # loopback too, but another source than the slave's 127.0.0.1


async def pb_login(port: int, name: str, password: str) -> str:
    """The master's answer to one PB login from GUESSER_ADDRESS: 'attached' or the refusal."""
    factory = pb.PBClientFactory()
    reactor.connectTCP("127.0.0.1", port, factory, timeout=10, bindAddress=(GUESSER_ADDRESS, 0))
    try:
        await factory.login(UsernamePassword(name.encode(), password.encode()), client=pb.Referenceable())
        return "attached"
    except Exception as e:  # the refusal travels as a remote failure
        return str(e)
    finally:
        factory.disconnect()


@pytest_twisted.ensureDeferred
async def test_a_guessed_slave_password_is_limited_but_the_real_slave_still_attaches(fleet):
    master = fleet.master()
    slave = fleet.slave(master)
    master.wait_attached("bs1")
    run_cli("buildslave", "stop", slave.basedir, check=True)
    wait_for(lambda: not master.slave("bs1")["connected"], "bs1 to detach")

    answers = [await pb_login(master.pb_port, "bs1", f"guess{n}") for n in range(10)]
    assert all("wrong password" in answer for answer in answers), answers
    limited = await pb_login(master.pb_port, "bs1", "pass")  # right, but over the limit: refused unread
    assert "too many failed logins for 'bs1'" in limited

    run_cli("buildslave", "start", slave.basedir, check=True)
    master.wait_attached("bs1")
    assert "too many failed logins for 'bs1'" in master.log_text()
