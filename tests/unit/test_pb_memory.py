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
