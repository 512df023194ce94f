"""FastBanana (both brokers) decodes exactly what Twisted's Banana does, however the bytes are
split, and encodes exactly the same bytes."""

import random

import pytest
from twisted.internet import abstract
from twisted.spread import banana

from buildfarm.common.pbwire import (
    BULK_READ_SIZE,
    BULK_SEND_LIMIT,
    FastBanana,
    MessageLimits,
    MessageTooLarge,
)


class Stock(banana.Banana):
    """Twisted's decoder (and encoder), collecting what it decodes; dialect pb already chosen."""

    def __init__(self):
        super().__init__(isClient=1)
        self.setPrefixLimit(64)
        self.currentDialect = b"pb"
        self.listStack = []
        self.received = []
        self.sent = []

    def expressionReceived(self, obj):  # noqa: N802 - Twisted's name
        self.received.append(obj)

    def encode(self, obj) -> bytes:
        self.sent = []
        self.transport = self  # sendEncoded writes here
        self.sendEncoded(obj)
        return b"".join(self.sent)

    def write(self, data):
        self.sent.append(data)

    def writeSequence(self, pieces):  # noqa: N802 - Twisted's name
        self.sent.extend(pieces)


class Fast(FastBanana, Stock):
    pass


def expression(rng: random.Random, depth: int = 0):
    kind = rng.choice(["int", "neg", "long", "float", "bytes", "big", "vocab", "list"]
                      if depth < 3 else ["int", "bytes"])
    if kind == "int":
        return rng.randrange(0, 2**31)
    if kind == "neg":
        return -rng.randrange(1, 2**31)
    if kind == "long":
        return rng.choice([1, -1]) * rng.randrange(2**40, 2**200)
    if kind == "float":
        return rng.random() * 1e6
    if kind == "bytes":
        return rng.randbytes(rng.randrange(0, 300))
    if kind == "big":
        return rng.randbytes(rng.randrange(60_000, 300_000))
    if kind == "vocab":
        return rng.choice([b"message", b"answer", b"dictionary", b"None"])
    return [expression(rng, depth + 1) for _ in range(rng.randrange(0, 6))]


def split(rng: random.Random, data: bytes) -> list[bytes]:
    chunks, pos = [], 0
    while pos < len(data):
        step = rng.choice([1, 2, 7, 1000, 65536, 200_000, 10**6])
        chunks.append(data[pos:pos + step])
        pos += step
    return chunks


@pytest.mark.parametrize("seed", range(12))
def test_decodes_the_same_expressions_as_twisted_for_any_split(seed):
    rng = random.Random(seed)
    encoder = Stock()
    messages = [expression(rng) for _ in range(20)]
    wire = b"".join(encoder.encode(m) for m in messages)
    stock, fast = Stock(), Fast()
    for chunk in split(rng, wire):
        stock.dataReceived(chunk)
        fast.dataReceived(chunk)
    assert fast.received == stock.received
    assert shape(fast.received) == shape(stock.received)  # bytes, never views of a read
    assert len(fast.received) == len(messages)


def shape(item):
    """The item's types, nested as it is."""
    return [shape(i) for i in item] if isinstance(item, list) else type(item)


@pytest.mark.parametrize("seed", range(6))
def test_encodes_the_same_bytes_as_twisted(seed):
    rng = random.Random(seed)
    stock, fast = Stock(), Fast()
    for _ in range(20):
        message = expression(rng)
        assert fast.encode(message) == stock.encode(message)
    for word in (b"message", b"dictionary", b"x" * 14, b"x" * 15):  # vocabulary, and around it
        assert fast.encode([word]) == stock.encode([word])


def test_refuses_to_encode_what_twisted_refuses():
    for encoder in (Stock(), Fast()):
        with pytest.raises(banana.BananaError, match="too long"):
            encoder.encode(b"x" * (banana.SIZE_LIMIT + 1))


def test_a_block_split_in_socket_reads_arrives_whole():
    block = bytes(range(256)) * 1024
    wire = Stock().encode([b"message", 1, b"write", [block]])
    fast = Fast()
    for pos in range(0, len(wire), 65536):
        fast.dataReceived(wire[pos:pos + 65536])
    assert fast.received == [[b"message", 1, b"write", [block]]]


def b128(number: int) -> bytes:
    parts = []
    banana.int2b128(number, parts.append)
    return b"".join(parts)


@pytest.mark.parametrize("wire, message", [
    (b128(banana.SIZE_LIMIT + 1) + banana.STRING, "String too long"),
    (b128(banana.SIZE_LIMIT + 1) + banana.LIST, "List too long"),
    (b"\x01" * 70, "bytes of prefix"),
])
def test_refuses_what_twisted_refuses(wire, message):
    for decoder in (Stock(), Fast()):
        with pytest.raises(banana.BananaError, match=message):
            decoder.dataReceived(wire)


def test_unknown_type_byte_is_refused_like_twisted():
    for decoder in (Stock(), Fast()):
        with pytest.raises(NotImplementedError, match="Invalid Type Byte"):
            decoder.dataReceived(b"\x01\xff")


class TCPLikeTransport:
    """What `FastBanana` tunes on a TCP transport: its read size and its send limit."""

    bufferSize = abstract.FileDescriptor.bufferSize
    SEND_LIMIT = abstract.FileDescriptor.SEND_LIMIT

    def __init__(self):
        self.sent = []

    def doRead(self):  # noqa: N802 - Twisted's name
        raise AssertionError("not read in this test")

    def writeSequence(self, pieces):  # noqa: N802 - Twisted's name
        self.sent.extend(pieces)


def test_only_a_connection_carrying_blocks_reads_and_sends_in_bigger_pieces():
    fast = Fast()
    fast.transport = transport = TCPLikeTransport()
    fast.sendEncoded([b"message", 1, b"ping", [b"x" * 1000]])
    fast.dataReceived(Stock().encode([b"answer", 1, b"y" * 1000]))
    assert vars(transport) == {"sent": transport.sent}  # Twisted's defaults, no attributes added

    block = b"z" * (256 * 1024)
    fast.sendEncoded([b"message", 2, b"write", [block]])
    assert transport.SEND_LIMIT == BULK_SEND_LIMIT
    assert transport.bufferSize == abstract.FileDescriptor.bufferSize
    assert b"".join(transport.sent).endswith(block)

    wire = Stock().encode([b"message", 3, b"write", [block]])
    fast.dataReceived(wire[:65536])
    assert transport.bufferSize == BULK_READ_SIZE
    fast.dataReceived(wire[65536:])
    assert fast.received[-1] == [b"message", 3, b"write", [block]]


# -- message limits ------------------------------------------------------------------------

class Capped(Fast):
    messageLimits = MessageLimits(max_bytes=4096, max_items=64)


def test_a_string_over_the_message_limit_is_refused_on_its_header_before_any_is_buffered():
    decoder = Capped()
    wire = Stock().encode([b"message", b"x" * 100_000])
    with pytest.raises(MessageTooLarge, match="4096 bytes"):
        decoder.dataReceived(wire[:20_000])  # the header and a fifth of the string
    assert len(decoder.buffer) < 100 and decoder._parts is None


def test_a_list_claiming_more_items_than_the_limit_is_refused_on_its_header():
    with pytest.raises(MessageTooLarge, match="64 items"):
        Capped().dataReceived(b128(1000) + banana.LIST)


@pytest.mark.parametrize("step", [1, 7, 4096])
def test_an_endless_run_of_tiny_items_is_refused_at_the_item_limit(step):
    decoder = Capped()
    wire = b128(1000) + banana.LIST + (b128(2) + banana.LIST) * 100  # lists within lists
    with pytest.raises(MessageTooLarge):
        for pos in range(0, len(wire), step):
            decoder.dataReceived(wire[pos:pos + step])
    assert pos < 64 * 3  # stopped at the 64th item, not at the end of the stream


def test_nested_items_count_towards_the_one_message_that_holds_them():
    decoder = Capped()
    wire = Stock().encode([[b"x" * 1000] for _ in range(5)])  # 5 KB in one message
    with pytest.raises(MessageTooLarge):
        decoder.dataReceived(wire)


@pytest.mark.parametrize("seed", range(4))
def test_messages_each_under_the_limit_decode_like_twisted_however_split(seed):
    rng = random.Random(seed)
    messages = [[b"message", rng.randrange(2**31), rng.randbytes(rng.randrange(0, 3000)),
                 [rng.randrange(100) for _ in range(rng.randrange(0, 40))]] for _ in range(200)]
    wire = b"".join(Stock().encode(m) for m in messages)  # 300 KB: far more than one limit
    stock, capped = Stock(), Capped()
    for chunk in split(rng, wire):
        stock.dataReceived(chunk)
        capped.dataReceived(chunk)
    assert capped.received == stock.received == messages
    assert "_progress" not in vars(capped)  # an idle decoder keeps no counts


def test_a_message_exactly_at_the_limits_is_accepted():
    message = [b"x" * 100]
    wire = Stock().encode(message)
    decoder = Fast()
    decoder.messageLimits = MessageLimits(max_bytes=len(wire), max_items=2)
    decoder.dataReceived(wire)
    decoder.messageLimits = MessageLimits(max_bytes=len(wire) - 1, max_items=2)
    with pytest.raises(MessageTooLarge):
        decoder.dataReceived(wire)
    decoder = Fast()
    decoder.messageLimits = MessageLimits(max_bytes=len(wire), max_items=1)
    with pytest.raises(MessageTooLarge):
        decoder.dataReceived(wire)


def test_a_long_string_gathered_across_reads_counts_once():
    block = b"z" * (512 * 1024)
    wire = Stock().encode([b"message", 3, b"write", [block]])
    decoder = Fast()
    decoder.messageLimits = MessageLimits(max_bytes=len(wire), max_items=16)
    for pos in range(0, len(wire), 65536):
        decoder.dataReceived(wire[pos:pos + 65536])
    decoder.dataReceived(wire)  # and again in one read
    assert decoder.received == [[b"message", 3, b"write", [block]]] * 2
    assert "_progress" not in vars(decoder)
