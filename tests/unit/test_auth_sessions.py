"""``SessionStore`` bounds: per user, and a global bound that one user cannot use against others."""

from twisted.internet import task

from buildfarm.master.auth.sessions import MAX_SESSIONS_PER_USER, SessionStore


def test_a_user_holds_at_most_their_bound_and_loses_their_own_least_recently_used():
    clock = task.Clock()
    store = SessionStore(clock, per_user=3)
    first, second, third = (store.create("oncall") for _ in range(3))
    clock.advance(1)
    store.get(first.sid)  # used again: now the second is the least recently used
    fourth = store.create("oncall")
    assert store.get(second.sid) is None
    assert [store.get(s.sid) for s in (first, third, fourth)] == [first, third, fourth]
    assert store.count("oncall") == 3


def test_ten_thousand_logins_of_one_account_evict_nobody_else():
    store = SessionStore(task.Clock())
    alice = store.create("alice")
    for _ in range(10_000):
        store.create("mallory")
    assert store.get(alice.sid) is alice
    assert store.count("mallory") == MAX_SESSIONS_PER_USER and len(store) == MAX_SESSIONS_PER_USER + 1


def test_a_full_store_takes_from_the_user_holding_the_most():
    clock = task.Clock()
    store = SessionStore(clock, max_sessions=6, per_user=4)
    mine = [store.create("alice"), store.create("bob")]
    clock.advance(1)
    busiest = [store.create("mallory") for _ in range(4)]
    store.create("carol")  # the store is full: mallory, not alice nor bob, loses one
    assert [store.get(s.sid) for s in mine] == mine
    assert store.get(busiest[0].sid) is None and store.count("mallory") == 3
    assert len(store) == 6


def test_expiry_and_drops_keep_the_per_user_index_right():
    clock = task.Clock()
    store = SessionStore(clock, idle_s=10, per_user=2)
    old = store.create("a")
    clock.advance(11)
    assert store.get(old.sid) is None and store.count("a") == 0
    kept, dropped = store.create("a"), store.create("a")
    store.drop(dropped.sid)
    store.drop("unknown")
    assert store.count("a") == 1 and store.get(kept.sid) is kept
    store.drop_user("a")
    assert store.count("a") == 0 and len(store) == 0


def test_among_users_holding_as_many_the_session_unused_the_longest_goes():
    clock = task.Clock()
    store = SessionStore(clock, max_sessions=2)
    first = store.create("a")
    clock.advance(1)
    second = store.create("b")
    clock.advance(1)
    store.get(first.sid)  # a's session is now the more recently used
    store.create("c")
    assert store.get(second.sid) is None and store.get(first.sid) is first
