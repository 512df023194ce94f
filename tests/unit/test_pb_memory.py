"""What an attached slave costs the master: the broker's per-connection state and the number
of attach sequences held at once."""

import pytest_twisted
from twisted.internet import defer
from twisted.internet.testing import StringTransport
from twisted.spread import pb

from buildfarm.master.pb.dispatcher import Dispatcher
from buildfarm.master.pb.manager import KeepAliveBroker


def connected(cls):
    broker = cls(isClient=False)
    broker.makeConnection(StringTransport())
    return broker


def test_broker_keeps_twisteds_vocabulary_and_limits_on_the_class():
    ours, stock = connected(KeepAliveBroker), connected(pb.Broker)
    for name in ("prefixLimit", "_smallestInt", "_largestInt", "_smallestLongInt", "_largestLongInt",
                 "outgoingSymbolCount"):
        assert getattr(ours, name) == getattr(stock, name), name
        assert name not in vars(ours), name
    assert ours.outgoingSymbols == stock.outgoingSymbols
    assert ours.outgoingSymbols is connected(KeepAliveBroker).outgoingSymbols


def test_an_idle_brokers_attributes_fit_a_shared_key_dict():
    broker = connected(KeepAliveBroker)
    # what PB sets on a broker once a slave has logged in and exchanged messages
    for name in ("factory", "serializingPerspective", "jellyMethod", "jellyArgs", "jellyKw"):
        setattr(broker, name, None)
    broker.authenticated()  # its own message limits
    broker.buffer = b"x"  # and a partial item between two reads
    assert len(vars(broker)) <= 30  # CPython's limit for a split (key-sharing) instance dict


def test_a_decoded_partial_message_leaves_no_buffer_behind():
    broker = connected(KeepAliveBroker)
    broker.dataReceived(b"\x01")  # a prefix without its type byte
    assert "buffer" in vars(broker)
    broker.dataReceived(b"\x81")  # the rest: INT 1 (dropped before the dialect is chosen)
    assert "buffer" not in vars(broker)


class Botmaster:
    def __init__(self):
        self.waiting: list[defer.Deferred] = []
        self.most = 0

    def slave_attaching(self, name, mind):
        d = defer.Deferred()
        self.waiting.append(d)
        self.most = max(self.most, len(self.waiting))
        return d


@pytest_twisted.ensureDeferred
async def test_only_a_few_attach_sequences_run_at_once_and_every_one_finishes():
    botmaster = Botmaster()
    dispatcher = Dispatcher(botmaster, concurrency=3)
    logins = [dispatcher.requestAvatar(f"s{i}".encode(), object(), pb.IPerspective) for i in range(10)]
    finished = 0
    while botmaster.waiting:
        assert len(botmaster.waiting) <= 3
        botmaster.waiting.pop(0).callback(f"slave{finished}")
        finished += 1
    results = await defer.gatherResults(logins)
    assert finished == 10 and botmaster.most == 3
    assert [avatar for _, avatar, _ in results] == [f"slave{i}" for i in range(10)]


def test_a_slaves_info_and_commands_share_their_texts_with_other_slaves():
    from buildfarm.master.pb.buildslave import _shared

    first, second = "".join(["worker_", "commands"]), "".join(["worker_c", "ommands"])
    assert first is not second
    assert _shared(first) is _shared(second)
    long_text = "x" * 1000
    assert _shared(long_text) is long_text and _shared(b"raw") == b"raw" and _shared(3) == 3


class Remote:
    def __init__(self, answers):
        self.answers = answers

    def callRemote(self, method, *args):  # noqa: N802 - PB's name
        answer = self.answers[method]
        return defer.succeed(answer() if callable(answer) else answer)


@pytest_twisted.ensureDeferred
async def test_the_commands_dict_is_kept_once_per_slave():
    from twisted.internet.task import Clock

    from buildfarm.master.pb.buildslave import BuildSlave

    slave = BuildSlave("s1", None, Clock(), 60.0, 10.0)
    info = {b"admin": b"me", "version": "4.3.0", "worker_commands": {"shell": "3.3", b"stat": b"3.1"}}
    slave.mind = Remote({"getWorkerInfo": info})
    await slave._read_info()
    assert slave.commands == {"shell": "3.3", "stat": "3.1"}
    assert slave.info["worker_commands"] is slave.commands
    assert slave.info["admin"] == b"me" and slave.version == "4.3.0"


def test_the_heap_is_trimmed_once_logins_settle_and_at_most_once_an_interval():
    from twisted.internet.task import Clock

    from buildfarm.master.pb.heaptrim import HeapTrimmer

    clock, trims = Clock(), []
    trimmer = HeapTrimmer(clock, trim=lambda: trims.append(clock.seconds()), min_interval=1.0)
    trimmer.settled()
    trimmer.settled()
    clock.advance(0)
    assert trims == [0.0]
    clock.advance(0.25)
    trimmer.settled()
    clock.advance(0.5)
    assert trims == [0.0]
    clock.advance(0.25)
    assert trims == [0.0, 1.0]
    trimmer.settled()
    trimmer.stop()
    clock.advance(5)
    assert trims == [0.0, 1.0] and not clock.getDelayedCalls()


def test_trimming_the_heap_is_harmless_with_or_without_glibc():
    from buildfarm.master.pb import heaptrim

    assert heaptrim.release_free_heap() in (True, False)


@pytest_twisted.ensureDeferred
async def test_the_dispatcher_asks_for_a_trim_when_no_login_is_left_in_progress():
    botmaster = Botmaster()
    trimmer = type("T", (), {"asked": 0, "settled": lambda self: setattr(self, "asked", self.asked + 1)})()
    dispatcher = Dispatcher(botmaster, concurrency=2, trimmer=trimmer)
    logins = [dispatcher.requestAvatar(f"s{i}".encode(), object(), pb.IPerspective) for i in range(3)]
    botmaster.waiting.pop(0).callback("a")
    botmaster.waiting.pop(0).errback(RuntimeError("attach failed"))
    assert trimmer.asked == 0
    botmaster.waiting.pop(0).callback("c")
    assert trimmer.asked == 1
    results = await defer.DeferredList(logins, consumeErrors=True)
    assert [ok for ok, _ in results] == [True, False, True]


def test_the_table_of_awaited_answers_is_dropped_once_every_answer_arrived():
    import sys

    broker = connected(KeepAliveBroker)
    broker.unserialize = lambda value: value  # answers as they are, no jelly
    fresh = sys.getsizeof({})
    answers = [broker.waitingForAnswers.setdefault(i, defer.Deferred()) for i in range(3)]
    got = []
    for d in answers:
        d.addBoth(got.append)
    broker.proto_answer(0, 1)
    broker.proto_error(1, ValueError("boom"))
    assert len(broker.waitingForAnswers) == 1
    broker.proto_answer(2, 3)
    assert broker.waitingForAnswers == {} and sys.getsizeof(broker.waitingForAnswers) == fresh
    assert got[0] == 1 and got[2] == 3
    got[1].trap(ValueError)


class Due:
    def __init__(self, log, name):
        self.log, self.name = log, name

    def ping_due(self, due):
        self.log.append((self.name, due))


def test_one_delayed_call_serves_every_slaves_next_ping_in_order():
    from twisted.internet.task import Clock

    from buildfarm.master.pb.pingqueue import PingQueue

    clock, log = Clock(), []
    queue = PingQueue(clock)
    for name, delay in (("b", 5.0), ("a", 3.0), ("c", 5.0)):
        queue.add(delay, Due(log, name))
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(3)
    assert log == [("a", 3.0)]
    clock.advance(2)
    assert log == [("a", 3.0), ("b", 5.0), ("c", 5.0)]
    assert len(queue) == 0 and not clock.getDelayedCalls()


@pytest_twisted.ensureDeferred
async def test_an_idle_slave_costs_no_delayed_call_of_its_own_and_a_detached_one_is_not_pinged():
    from twisted.internet.task import Clock

    from buildfarm.master.pb.buildslave import BuildSlave

    clock, pings = Clock(), []
    slaves = []
    for i in range(3):
        slave = BuildSlave(f"s{i}", None, clock, 60.0, 10.0)
        slave.mind = Remote({"print": lambda i=i: pings.append(i)})
        slave.attached = True
        slave.start_pinging()
        slaves.append(slave)
    assert len(clock.getDelayedCalls()) == 1
    slaves[1].attached = False
    slaves[1]._ping_due = None  # what detached() does
    clock.advance(60)
    assert sorted(pings) == [0, 2]
    clock.advance(60)
    assert sorted(pings) == [0, 0, 2, 2]
    assert slaves[0].last_seen == 120.0
