"""The server's check of an item stored as an ``.isolated`` file (``is_isolated``): its content
must be an ``.isolated`` manifest of the namespace, a JSON object whose ``includes`` and
``files[*].h`` are digests of the namespace's form and whose ``algo`` (when given) is the
namespace's.  Whether the digests it names are stored is not checked: Isolate's client uploads a
manifest and its files in parallel.  The manifest's whole format lives with the client side
(common/); this is only what the server needs to refuse what is no manifest."""

import json

from buildfarm.master.cas.namespaces import BadNamespace, Namespace

# The .isolated ``algo`` names of each namespace digest algorithm.
ALGO_NAMES = {"sha1": ("sha-1",), "sha256": ("sha-256",), "sha512": ("sha-512",)}


class BadIsolated(ValueError):
    """Content sent as an ``.isolated`` file that is not one."""


def check_isolated(namespace: Namespace, data: bytes, size: int) -> None:
    """``BadIsolated`` unless ``data`` (as ``namespace`` stores it) is an ``.isolated`` manifest
    of ``size`` bytes (never inflated past that: the store verifies size and digest)."""
    try:
        content = namespace.decompressor().decompress(data, size + 1)
        if len(content) != size:
            raise ValueError(f"its content is not the declared {size} bytes")
        manifest = json.loads(content)
    except Exception as e:  # zlib.error, ValueError, UnicodeDecodeError: not a manifest
        raise BadIsolated(f"an .isolated file must be a JSON object: {e}") from None
    if not isinstance(manifest, dict):
        raise BadIsolated("an .isolated file must be a JSON object")
    algo = manifest.get("algo")
    if algo is not None and algo not in ALGO_NAMES[namespace.algorithm]:
        raise BadIsolated(f".isolated algo {algo!r} is not the namespace's {namespace.digest_hash}")
    includes = manifest.get("includes", [])
    files = manifest.get("files", {})
    if not isinstance(includes, list) or not isinstance(files, dict):
        raise BadIsolated(".isolated includes must be a list and files an object")
    try:
        for digest in includes:
            namespace.check_digest(digest)
        for path, entry in files.items():
            if not isinstance(entry, dict):
                raise BadIsolated(f".isolated files[{path!r}] must be an object")
            if "h" in entry:
                namespace.check_digest(entry["h"])
    except BadNamespace as e:
        raise BadIsolated(f".isolated names a bad digest: {e}") from None
