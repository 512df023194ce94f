"""Isolate namespaces: algorithm, compression and the form of digests (master/cas/namespaces.py)."""

import hashlib
import zlib

import pytest

from buildfarm.master.cas.namespaces import BadNamespace, parse_namespace


@pytest.mark.parametrize("name, algorithm, digest_hash, chars, compression", [
    ("default-gzip", "sha1", "sha-1", 40, "flate"),
    ("default", "sha1", "sha-1", 40, ""),
    ("temporary-deflate", "sha1", "sha-1", 40, "flate"),
    ("sha256-gzip", "sha256", "sha-256", 64, "flate"),
    ("sha256-plain", "sha256", "sha-256", 64, ""),
    ("sha512-deflate", "sha512", "sha-512", 128, "flate"),
])
def test_a_namespace_name_gives_its_algorithm_and_compression(name, algorithm, digest_hash, chars,
                                                               compression):
    ns = parse_namespace(name)
    assert (ns.algorithm, ns.digest_hash, ns.digest_chars, ns.compression) == \
        (algorithm, digest_hash, chars, compression)
    assert ns.api_object() == {"namespace": name, "digest_hash": digest_hash, "compression": compression}


@pytest.mark.parametrize("name", ["", "a b", "../x", "x/y", "é-gzip", "x" * 65, None, 7])
def test_a_bad_namespace_name_is_refused(name):
    with pytest.raises(BadNamespace):
        parse_namespace(name)


def test_a_digest_must_have_the_namespaces_form():
    sha1 = parse_namespace("default-gzip")
    good = hashlib.sha1(b"x").hexdigest()
    assert sha1.check_digest(good) == good
    for bad in (good.upper(), good[:-1], good + "0", hashlib.sha256(b"x").hexdigest(), "../" + good[3:], 5):
        with pytest.raises(BadNamespace):
            sha1.check_digest(bad)
    assert parse_namespace("sha256-gzip").check_digest(hashlib.sha256(b"x").hexdigest())


def test_a_compressed_namespace_stores_a_zlib_stream_and_a_plain_one_the_bytes():
    assert zlib.decompress(parse_namespace("default-gzip").compress(b"abc" * 100)) == b"abc" * 100
    assert parse_namespace("default").compress(b"abc") == b"abc"
