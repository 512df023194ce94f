"""Faster Banana (the bytes PB travels in) for long strings, with the same wire format.

Decoding:
Twisted's ``Banana.dataReceived`` prepends what it kept to every chunk the socket gives it and
slices off the rest of the buffer for every token it reads, so a 256 KiB ``write`` block
arriving in 64 KiB reads is copied about five times, and a read holding several messages
costs time quadratic in its size.  ``FastBananaDecoding`` walks the buffer with an offset
instead and gathers the chunks of a long string in a list until the string is complete, so a
block is copied twice (the join and the slice).  It decodes exactly what Twisted's decoder
does, with the same limits (prefix length, ``SIZE_LIMIT``) and the same errors, so both ends
stay compatible with stock Twisted PB peers.

Encoding: Twisted looks every byte string up in PB's vocabulary of short words, which hashes
all of it (a 256 KiB transfer block each time); a string longer than every word is sent as a
string at once, exactly the bytes Twisted would send.

Sending: the encoded pieces of a message go to the transport as a sequence, so a block is
not first copied into a ``BytesIO``.  A connection that carries long strings (transfer
blocks) reads its socket in `BULK_READ_SIZE` pieces and sends in `BULK_SEND_LIMIT` pieces
instead of Twisted's 64 KiB and 128 KiB, so a 512 KiB block costs one or two system calls
and reactor turns instead of eight; idle connections keep Twisted's defaults (and no extra
attributes).

Limits: a ``messageLimits`` (`MessageLimits`) caps the bytes and the items of one message
(one top-level expression and everything nested in it), on top of Banana's per-item limits.
A string or list whose header alone would take its message over the cap is refused on its
header, before any of it is buffered; `MessageTooLarge` is raised to ``dataReceived``'s
caller.  The default, None, leaves messages capped by Banana's limits only.

Mix `FastBanana` in before ``pb.Broker``: the master's broker and the slave's both do.
"""

import struct
import sys
from dataclasses import dataclass

from twisted.spread import banana

_LIST, _INT, _STRING, _NEG, _FLOAT, _LONGINT, _LONGNEG, _VOCAB = (
    ord(t) for t in (banana.LIST, banana.INT, banana.STRING, banana.NEG, banana.FLOAT,
                     banana.LONGINT, banana.LONGNEG, banana.VOCAB))
_HIGH_BIT = 0x80


_LONGEST_WORD = max(len(word) for word in banana.Banana.outgoingVocabulary)
BULK_STRING = 64 * 1024  # a string at least this long marks its connection as carrying bulk
BULK_READ_SIZE = 512 * 1024  # socket reads of a bulk connection (Twisted: 64 KiB)
BULK_SEND_LIMIT = 1024 * 1024  # socket sends of a bulk connection (Twisted: 128 KiB)


@dataclass(frozen=True)
class MessageLimits:
    """The most one message (a top-level Banana expression, with everything nested in it) may
    hold: ``max_bytes`` of encoded Banana and ``max_items`` items (strings, numbers, lists)."""

    max_bytes: int
    max_items: int


_NO_LIMITS = MessageLimits(sys.maxsize, sys.maxsize)


class MessageTooLarge(banana.BananaError):
    """A message went over its connection's `MessageLimits`."""


def _tuneForBulk(transport, attribute: str, value: int) -> None:
    """Set a TCP transport's read size or send limit (a TLS wrapper has neither)."""
    if getattr(transport, attribute, value) < value and hasattr(transport, "doRead"):
        setattr(transport, attribute, value)


class FastBanana:
    """Mix in before a ``banana.Banana`` subclass (such as ``pb.Broker``)."""

    messageLimits: MessageLimits | None = None  # None: Banana's per-item limits only
    # (bytes, items) of the message being decoded, while it spans socket reads
    _progress: tuple[int, int] = (0, 0)

    def sendEncoded(self, obj) -> None:  # noqa: N802 - Twisted's name
        pieces: list[bytes] = []
        self._encode(obj, pieces.append)
        self.transport.writeSequence(pieces)

    def _encode(self, obj, write) -> None:
        if type(obj) is bytes and len(obj) > _LONGEST_WORD:
            if len(obj) > banana.SIZE_LIMIT:
                raise banana.BananaError("byte string is too long to send (%d)" % (len(obj),))
            if len(obj) >= BULK_STRING:
                _tuneForBulk(self.transport, "SEND_LIMIT", BULK_SEND_LIMIT)
            banana.int2b128(len(obj), write)
            write(banana.STRING)
            write(obj)
            return
        super()._encode(obj, write)

    _parts: list | None = None  # the pieces (bytes, memoryviews) of an incomplete long string
    _gathered = 0  # their total length
    _needed = 0  # the length of that string

    def dataReceived(self, chunk: bytes) -> None:  # noqa: N802 - Twisted's name
        if self._parts is not None:
            self._parts.append(chunk)
            self._gathered += len(chunk)
            if self._gathered < self._needed:
                return
            parts, excess = self._parts, self._gathered - self._needed
            del self._parts, self._gathered, self._needed  # back to the class defaults
            if excess:
                view = memoryview(chunk)
                parts[-1] = view[:len(chunk) - excess]
            self._deliver(b"".join(parts))  # the string's one copy
            if excess:
                self._decode(view[len(chunk) - excess:])
            else:
                self._keepProgress(*self._progress)
            return
        if self.buffer:
            buffer = self.buffer + chunk
            del self.buffer  # back to the class's b"" (one key fewer in an idle broker's dict)
        else:
            buffer = chunk
        self._decode(buffer)

    def _deliver(self, item) -> None:
        """Hand a decoded item on, then every list it completes."""
        self.gotItem(item)
        self._completeLists()

    def _completeLists(self) -> None:
        listStack = self.listStack
        while listStack and len(listStack[-1][1]) == listStack[-1][0]:
            self.gotItem(listStack.pop()[1])

    def _decode(self, buffer: bytes | memoryview) -> None:
        """Decode ``buffer`` (the rest of a socket read: bytes, or a view of them); what does
        not make a whole item yet is kept for the next read.  Counts the bytes and items of the
        message in progress against ``messageLimits``, read anew as each message starts (a
        login between two messages changes them)."""
        listStack = self.listStack
        deliver = self._deliver
        prefixLimit = self.prefixLimit
        used, items = self._progress
        maxBytes = maxItems = 0
        if listStack:
            maxBytes, maxItems = self._limits()
        size = len(buffer)
        pos = 0
        while pos < size:
            if not listStack:  # a new message starts here
                used = items = 0
                maxBytes, maxItems = self._limits()
            # the base-128 prefix: bytes below 0x80 up to the type byte
            end = pos
            scanLimit = min(size, pos + prefixLimit + 1)
            while end < scanLimit and buffer[end] < _HIGH_BIT:
                end += 1
            if end == scanLimit:
                if end - pos > prefixLimit:
                    raise banana.BananaError(
                        "Security precaution: more than %d bytes of prefix" % (prefixLimit,))
                self.buffer = bytes(buffer[pos:])  # the type byte has not arrived yet
                self._keepProgress(used, items)
                return
            num = 0
            for index in range(end - 1, pos - 1, -1):
                num = (num << 7) | buffer[index]
            typebyte = buffer[end]
            rest = end + 1
            used += rest - pos
            items += 1
            if typebyte == _LIST:
                if num > banana.SIZE_LIMIT:
                    raise banana.BananaError("Security precaution: List too long.")
                if used > maxBytes or items + num > maxItems:
                    self._tooLarge(maxBytes, maxItems)
                listStack.append((num, []))
                pos = rest
                if not num:
                    self._completeLists()
                continue
            if typebyte == _STRING:
                if num > banana.SIZE_LIMIT:
                    raise banana.BananaError("Security precaution: String too long.")
                if used + num > maxBytes or items > maxItems:
                    self._tooLarge(maxBytes, maxItems)
                if size - rest < num:
                    if num < BULK_STRING:  # decoded again, prefix and all, when it is whole
                        self._keepProgress(used - (rest - pos), items - 1)
                    else:
                        self._keepProgress(used + num, items)
                    self._wait(buffer, pos, rest, num)
                    return
                used += num
                pos = rest + num
                deliver(bytes(buffer[rest:pos]))
                continue
            if items > maxItems or used > maxBytes:
                self._tooLarge(maxBytes, maxItems)
            if typebyte in (_INT, _LONGINT):
                pos = rest
                deliver(num)
            elif typebyte in (_NEG, _LONGNEG):
                pos = rest
                deliver(-num)
            elif typebyte == _VOCAB:
                pos = rest
                item = self.incomingVocabulary[num]
                if self.currentDialect == b"pb":
                    deliver(item)
                else:
                    raise NotImplementedError(f"Invalid item for pb protocol {item!r}")
            elif typebyte == _FLOAT:
                if size - rest < 8:
                    self.buffer = bytes(buffer[pos:])
                    self._keepProgress(used - (rest - pos), items - 1)
                    return
                used += 8
                if used > maxBytes:
                    self._tooLarge(maxBytes, maxItems)
                pos = rest + 8
                deliver(struct.unpack("!d", buffer[rest:pos])[0])
            else:
                raise NotImplementedError(f"Invalid Type Byte {bytes([typebyte])!r}")
        self._keepProgress(used, items)

    def _limits(self) -> tuple[int, int]:
        limits = self.messageLimits or _NO_LIMITS
        return limits.max_bytes, limits.max_items

    def _keepProgress(self, used: int, items: int) -> None:
        """Remember the counts of a message that goes on in a later read; an idle connection
        keeps none (the class's default)."""
        if self.listStack:
            self._progress = (used, items)
        elif "_progress" in self.__dict__:
            del self._progress

    def _tooLarge(self, maxBytes: int, maxItems: int):
        raise MessageTooLarge(
            f"a message over its limit of {maxBytes} bytes or {maxItems} items")

    def _wait(self, buffer: bytes | memoryview, pos: int, rest: int, length: int) -> None:
        """A string of ``length`` bytes starts at ``rest`` (its prefix at ``pos``) and has not
        all arrived: a short one stays in ``buffer`` with its prefix, to be decoded again; a
        long one is gathered in pieces, without copying, until it is whole."""
        if length < BULK_STRING:
            self.buffer = bytes(buffer[pos:])
            return
        self._parts = [memoryview(buffer)[rest:]]
        self._gathered = len(buffer) - rest
        self._needed = length
        _tuneForBulk(self.transport, "bufferSize", BULK_READ_SIZE)
