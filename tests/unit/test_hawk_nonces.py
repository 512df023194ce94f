"""Hawk nonces shared by the masters of one database (master/auth/nonces.py, master/db/nonces.py):
a request received by one master and replayed to another is refused as a replay; of many
masters receiving it at once exactly one accepts it; expired nonces are purged on the
injected clock.  On SQLite and PostgreSQL."""

import pytest_twisted
from twisted.internet import defer, task
from zope.interface.verify import verifyObject

from buildfarm.master.auth import hawk
from buildfarm.master.auth.clients import validate_clients
from buildfarm.master.auth.hawk import NonceCache
from buildfarm.master.auth.nonces import PURGE_INTERVAL_S, INonceStore, SharedNonceStore, nonce_key
from buildfarm.master.auth.service import AuthService
from buildfarm.master.auth.users import User, validate_users
from buildfarm.master.config import MasterConfig
from tests.unit.test_auth_hawk import BUILDER, CLIENTS, KEY, NOW, _now, refusal, request, signed


def master_auth(db, shared: bool = True) -> AuthService:
    """The auth service of one master on ``db`` (its own clock at ``NOW``)."""
    clock = task.Clock()
    clock.advance(NOW)
    users, problems = validate_users([User("ann", password="ann-pw", scopes=["changes:*"])], None)
    clients, more = validate_clients(CLIENTS, None)
    assert problems == more == []
    return AuthService(clock, users, (), db=db, clients=clients, clients_key=KEY, run_slowly=_now,
                       iterations=1, shared_nonces=shared)


def replayed(first) -> object:
    return request("GET", "/api/v1/auth/whoami", {"authorization": first.getHeader(b"authorization")})


def test_both_nonce_stores_provide_the_interface(db):
    clock = task.Clock()
    assert verifyObject(INonceStore, NonceCache(clock))
    assert verifyObject(INonceStore, SharedNonceStore(clock, db, hawk.SKEW_S))


@pytest_twisted.ensureDeferred
async def test_a_request_replayed_to_another_master_is_refused_as_a_replay(db):
    a, b = master_auth(db), master_auth(db)
    first = signed(BUILDER, nonce="n-0001")

    assert (await a.identify(first)).name == "ci/builder"
    refused = await refusal(b, replayed(first))

    assert refused.reason == hawk.REPLAY
    assert str(refused).startswith("Hawk replay: this request (client 'ci/builder', nonce and timestamp) "
                                   "was already received: a replay")
    assert (await b.identify(signed(BUILDER, nonce="n-0002"))).name == "ci/builder"  # a new request


@pytest_twisted.ensureDeferred
async def test_without_several_masters_each_master_keeps_its_own_nonces(db):
    # one master keeps them in memory, as before (no database round trip per request)
    a, b = master_auth(db, shared=False), master_auth(db, shared=False)
    first = signed(BUILDER, nonce="n-0003")
    assert (await a.identify(first)).name == "ci/builder"
    assert (await b.identify(replayed(first))).name == "ci/builder"
    assert (await refusal(a, replayed(first))).reason == hawk.REPLAY
    assert await db.nonces.count() == 0


@pytest_twisted.ensureDeferred
async def test_of_many_masters_receiving_one_request_at_once_exactly_one_accepts_it(db):
    key = nonce_key("ci/builder", "n-0004", str(NOW))
    answers = await defer.gatherResults([defer.ensureDeferred(db.nonces.remember(key, NOW + 900.0))
                                         for _ in range(20)])
    assert sorted(answers) == [False] * 19 + [True]


@pytest_twisted.ensureDeferred
async def test_expired_nonces_are_purged_on_the_clock_and_the_others_kept(db):
    auth = master_auth(db)
    auth.startService()
    try:
        await auth.identify(signed(BUILDER, nonce="old", ts=NOW - 600))
        await auth.identify(signed(BUILDER, nonce="new", ts=NOW))
        assert await db.nonces.count() == 2
        auth.clock.advance(hawk.SKEW_S - 600 + 1)  # past the old one's window, still in the new one's
        auth.clock.advance(PURGE_INTERVAL_S)
        await _purged(db, 1)
    finally:
        auth.stopService()


async def _purged(db, left: int) -> None:
    from tests.fixtures.memorymaster import eventually

    async def check():
        return await db.nonces.count() == left

    await eventually(check, f"{left} nonce(s) left")


@pytest_twisted.ensureDeferred
async def test_a_reconfig_to_several_masters_shares_the_nonces_and_back(db):
    auth = master_auth(db, shared=False)
    config = MasterConfig("master.cfg")
    config.multi_master = True
    auth.reconfigService(config)
    assert isinstance(auth.hawk.nonces, SharedNonceStore)
    config.multi_master = False
    auth.reconfigService(config)
    assert isinstance(auth.hawk.nonces, NonceCache)
