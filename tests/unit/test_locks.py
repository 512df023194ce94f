"""Locks: counting and exclusive access, per master and per slave."""

import pytest_twisted
from twisted.internet import defer

from buildfarm.master.process.locks import LockManager, MasterLock, SlaveLock


def test_counting_lock_admits_max_count_holders():
    lock, manager = MasterLock("db", maxCount=2), LockManager()
    counting = [lock.access("counting")]
    manager.claim("a", counting, None)
    manager.claim("b", counting, None)
    assert not manager.available(counting, None)
    manager.release("a", counting, None)
    assert manager.available(counting, None)


def test_exclusive_access_waits_for_every_counting_holder():
    lock, manager = MasterLock("db", maxCount=3), LockManager()
    manager.claim("a", [lock.access("counting")], None)
    assert not manager.available([lock.access("exclusive")], None)
    manager.release("a", [lock.access("counting")], None)
    manager.claim("b", [lock.access("exclusive")], None)
    assert not manager.available([lock.access("counting")], None)


def test_slave_lock_is_separate_per_slave_with_overrides():
    lock, manager = SlaveLock("cpu", maxCount=1, maxCountForSlave={"big": 2}), LockManager()
    access = [lock.access("counting")]
    manager.claim("a", access, "small")
    assert not manager.available(access, "small")
    assert manager.available(access, "big")
    manager.claim("b", access, "big")
    assert manager.available(access, "big")


@pytest_twisted.ensureDeferred
async def test_acquire_waits_for_a_release_then_claims():
    lock, manager = MasterLock("one"), LockManager()
    access = [lock.access("exclusive")]
    manager.claim("first", access, None)
    waiting = defer.ensureDeferred(manager.acquire("second", access, None))
    assert not waiting.called
    manager.release("first", access, None)
    await waiting
    assert manager.holders(lock) == 1
