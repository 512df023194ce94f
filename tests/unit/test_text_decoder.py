"""common/decoding.py: the one decoder of wire text, lenient on the master and strict on the slave."""

import pytest

from buildfarm.common.decoding import REPLACE, STRICT, as_text
from buildfarm.slave.commands.base import asText, text
from buildfarm.slave.runprocess import _text

BAD = b"caf\xe9"


def test_the_master_replaces_undecodable_bytes():
    assert as_text(BAD) == as_text(BAD, REPLACE) == "caf\ufffd"


def test_strict_decoding_refuses_undecodable_bytes_as_a_value_error():
    with pytest.raises(ValueError):
        as_text(BAD, STRICT)


def test_text_and_other_values_pass_through_both_ways():
    assert as_text("caf\xe9", STRICT) == as_text(b"caf\xc3\xa9") == "caf\xe9"
    assert as_text(7) == "7"


def test_the_slave_decodes_with_the_common_decoder_strictly():
    assert asText(b"build") == _text(b"build") == "build"
    for decode in (asText, _text):
        with pytest.raises(UnicodeDecodeError):
            decode(BAD)
    with pytest.raises(ValueError):
        text(BAD)  # an argument check: the command is refused, not run with mangled text
