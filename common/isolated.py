"""The ``.isolated`` format (versions 1.4 and 2.0): a JSON manifest of a tree by content hash.

``parse`` reads one document and refuses anything malformed with an ``IsolatedFormatError``
that names the field; ``serialise`` writes it canonically (sorted keys, separators
``(',', ':')``), so one tree always gives one hash; ``resolve`` follows ``includes`` through a
fetch function and merges the files (the root wins over its includes, earlier includes over
later ones; a cycle is an error).  Shared by the master (the store checks uploaded
``.isolated`` files) and the slave and the CLI (archive and download).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _encode_string  # the C encoder's, ensure_ascii=False
from typing import Any

ALGOS: dict[str, Callable[[], Any]] = {
    "sha-1": hashlib.sha1,
    "sha-256": hashlib.sha256,
    "sha-512": hashlib.sha512,
}
DIGEST_HEX_LEN = {"sha-1": 40, "sha-256": 64, "sha-512": 128}
VERSION_1 = "1.4"
VERSION_2 = "2.0"
SUPPORTED_MAJORS = (1, 2)
# read_only (1.x): 0 writable copies, 1 files read-only, 2 the whole tree read-only.
READ_ONLY_VALUES = (0, 1, 2)
# Keys a 2.0 document may not carry: they moved into the task.
REMOVED_IN_2 = ("command", "relative_cwd", "read_only")
KNOWN_KEYS = {"algo", "files", "includes", "version", *REMOVED_IN_2}
ENTRY_KEYS = {"h", "s", "m", "l", "t"}
MAX_MODE = 0o7777
HASH_CHUNK_BYTES = 1 << 20
_HEX = re.compile(r"[0-9a-f]+\Z")


class IsolatedFormatError(ValueError):
    """A ``.isolated`` document (or a path, digest or include graph) that cannot be used."""


@dataclass(frozen=True)
class FileEntry:
    """One entry of ``files``: a regular file (``digest`` and ``size``, optional ``mode``) or
    a symlink (``link``, nothing else)."""

    digest: str | None = None
    size: int | None = None
    mode: int | None = None
    link: str | None = None

    @property
    def is_link(self) -> bool:
        return self.link is not None

    def to_json(self) -> dict[str, Any]:
        if self.link is not None:
            return {"l": self.link}
        out: dict[str, Any] = {"h": self.digest, "s": self.size}
        if self.mode is not None:
            out["m"] = self.mode
        return out


@dataclass(frozen=True)
class Isolated:
    """A parsed ``.isolated`` document."""

    algo: str = "sha-1"
    version: str = VERSION_1
    files: Mapping[str, FileEntry] = field(default_factory=dict)
    includes: tuple[str, ...] = ()
    command: tuple[str, ...] | None = None
    relative_cwd: str | None = None
    read_only: int | None = None

    def to_json(self, with_files: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"algo": self.algo, "version": self.version}
        if self.files and with_files:
            out["files"] = {p: e.to_json() for p, e in self.files.items()}
        if self.includes:
            out["includes"] = list(self.includes)
        if self.command is not None:
            out["command"] = list(self.command)
        if self.relative_cwd is not None:
            out["relative_cwd"] = self.relative_cwd
        if self.read_only is not None:
            out["read_only"] = self.read_only
        return out


def algo_for_namespace(namespace: str) -> str:
    """The hash algorithm a namespace fixes: ``sha256-``/``sha512-`` prefixes, else SHA-1."""
    if namespace.startswith("sha256-"):
        return "sha-256"
    if namespace.startswith("sha512-"):
        return "sha-512"
    return "sha-1"


def new_hasher(algo: str) -> Any:
    """A fresh hashlib object for ``algo`` (``sha-1``, ``sha-256`` or ``sha-512``)."""
    try:
        return ALGOS[algo]()
    except KeyError:
        raise IsolatedFormatError(f"unknown algo {algo!r}; expected one of {sorted(ALGOS)}") from None


def digest_of(data: bytes, algo: str) -> str:
    """The hex digest of ``data`` under ``algo``."""
    hasher = new_hasher(algo)
    hasher.update(data)
    return hasher.hexdigest()


def hash_file(path: str, algo: str) -> str:
    """The hex digest of the file at ``path`` under ``algo``, read in chunks (blocking)."""
    hasher = new_hasher(algo)
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            hasher.update(chunk)
    return hasher.hexdigest()


def check_digest(digest: Any, algo: str) -> str:
    """``digest`` if it is a lowercase hex digest of the right length for ``algo``."""
    want = DIGEST_HEX_LEN.get(algo)
    if want is None:
        raise IsolatedFormatError(f"unknown algo {algo!r}; expected one of {sorted(ALGOS)}")
    if not isinstance(digest, str) or len(digest) != want or not _HEX.match(digest):
        raise IsolatedFormatError(f"{digest!r} is not a {algo} digest ({want} lowercase hex digits)")
    return digest


def normalise_path(path: Any) -> str:
    """A relative path with ``/`` separators; ``\\`` is converted.  Empty, absolute, ``..``,
    ``.`` components, empty components and a trailing separator are refused."""
    if not isinstance(path, str) or not path:
        raise IsolatedFormatError(f"path {path!r} must be a non-empty string")
    p = path.replace("\\", "/")
    if p.startswith("/") or re.match(r"[A-Za-z]:", p):
        raise IsolatedFormatError(f"path {path!r} is absolute")
    if p.endswith("/"):
        raise IsolatedFormatError(f"path {path!r} ends with a separator")
    for part in p.split("/"):
        if part in ("", ".", ".."):
            raise IsolatedFormatError(f"path {path!r} has an empty, '.' or '..' component")
        if "\0" in part:
            raise IsolatedFormatError(f"path {path!r} contains a NUL byte")
    return p


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_entry(path: str, raw: Any, algo: str) -> FileEntry:
    where = f"files[{path!r}]"
    if not isinstance(raw, dict):
        raise IsolatedFormatError(f"{where} must be an object")
    unknown = set(raw) - ENTRY_KEYS
    if unknown:
        raise IsolatedFormatError(f"{where} has unknown keys {sorted(unknown)}")
    if raw.get("t", "basic") != "basic":
        raise IsolatedFormatError(f"{where}: type {raw['t']!r} is not supported (only 'basic')")
    if "l" in raw:
        if set(raw) - {"l", "t"}:
            raise IsolatedFormatError(f"{where}: a symlink ('l') has no 'h', 's' or 'm'")
        if not isinstance(raw["l"], str) or not raw["l"]:
            raise IsolatedFormatError(f"{where}: 'l' must be a non-empty string")
        return FileEntry(link=raw["l"].replace("\\", "/"))
    if "h" not in raw or "s" not in raw:
        raise IsolatedFormatError(f"{where} needs both 'h' and 's' (or 'l' for a symlink)")
    size = raw["s"]
    if not _is_int(size) or size < 0:
        raise IsolatedFormatError(f"{where}: 's' must be a non-negative integer")
    mode = raw.get("m")
    if mode is not None and (not _is_int(mode) or not 0 <= mode <= MAX_MODE):
        raise IsolatedFormatError(f"{where}: 'm' must be an integer mode between 0 and 0o7777")
    return FileEntry(digest=check_digest(raw["h"], algo), size=size, mode=mode)


def _parse_version(raw: Any) -> str:
    if not isinstance(raw, str) or not re.fullmatch(r"\d+\.\d+", raw):
        raise IsolatedFormatError(f"version {raw!r} must be a string 'MAJOR.MINOR'")
    if int(raw.split(".")[0]) not in SUPPORTED_MAJORS:
        raise IsolatedFormatError(f"version {raw} is not supported; majors {SUPPORTED_MAJORS} are")
    return raw


def from_json(doc: Any, algo: str | None = None) -> Isolated:
    """An ``Isolated`` from a decoded JSON document.  ``algo``, when given (from the
    namespace), must agree with the document's."""
    if not isinstance(doc, dict):
        raise IsolatedFormatError("an .isolated document must be a JSON object")
    unknown = set(doc) - KNOWN_KEYS
    if unknown:
        raise IsolatedFormatError(f"unknown keys {sorted(unknown)}")
    version = _parse_version(doc.get("version"))
    doc_algo = doc.get("algo", "sha-1")
    if doc_algo not in ALGOS:
        raise IsolatedFormatError(f"unknown algo {doc_algo!r}; expected one of {sorted(ALGOS)}")
    if algo is not None and algo != doc_algo:
        raise IsolatedFormatError(f"algo {doc_algo!r} does not match the namespace's {algo!r}")
    if version.startswith("2."):
        present = [k for k in REMOVED_IN_2 if k in doc]
        if present:
            raise IsolatedFormatError(f"version {version} has no {present} (removed in 2.0)")
    files_raw = doc.get("files", {})
    if not isinstance(files_raw, dict):
        raise IsolatedFormatError("'files' must be an object")
    files: dict[str, FileEntry] = {}
    for raw_path, raw_entry in files_raw.items():
        path = normalise_path(raw_path)
        if path in files:
            raise IsolatedFormatError(f"path {raw_path!r} appears twice")
        files[path] = _parse_entry(path, raw_entry, doc_algo)
    includes_raw = doc.get("includes", [])
    if not isinstance(includes_raw, list):
        raise IsolatedFormatError("'includes' must be a list of digests")
    includes = tuple(check_digest(h, doc_algo) for h in includes_raw)
    command = doc.get("command")
    if command is not None and (not isinstance(command, list)
                                or not all(isinstance(a, str) for a in command)):
        raise IsolatedFormatError("'command' must be a list of strings")
    relative_cwd = doc.get("relative_cwd")
    if relative_cwd is not None and relative_cwd != ".":
        relative_cwd = normalise_path(relative_cwd)
    read_only = doc.get("read_only")
    if read_only is not None and (isinstance(read_only, bool) or read_only not in READ_ONLY_VALUES):
        raise IsolatedFormatError(f"'read_only' must be one of {READ_ONLY_VALUES}")
    return Isolated(algo=doc_algo, version=version, files=files, includes=includes,
                    command=tuple(command) if command is not None else None,
                    relative_cwd=relative_cwd, read_only=read_only)


def parse(data: bytes, algo: str | None = None) -> Isolated:
    """An ``Isolated`` from the bytes of a document (UTF-8 JSON)."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise IsolatedFormatError(f"not a JSON document: {e}") from None
    return from_json(doc, algo)


def effective_read_only(isolated: Isolated) -> int:
    """How to map ``isolated``: 2.0 has no ``read_only`` and its files are read-only (1); in
    1.x an absent ``read_only`` means writable copies (0), as in Isolate's run_isolated."""
    if isolated.version.startswith("2."):
        return 1
    return isolated.read_only or 0


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _entry_json(entry: FileEntry) -> str:
    if entry.link is not None:
        return '{"l":' + _encode_string(entry.link) + "}"
    mode = "" if entry.mode is None else f'"m":{int(entry.mode)},'
    # digests are lowercase hex (checked on parse; build_isolated makes them): nothing to escape
    return '{"h":' + _encode_string(entry.digest) + "," + mode + f'"s":{int(entry.size)}' + "}"


def serialise(isolated: Isolated) -> bytes:
    """The canonical bytes of ``isolated``: sorted keys, no spaces, UTF-8 (what
    ``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` writes,
    with the ``files`` of a big tree written without building a dict per entry first)."""
    doc = isolated.to_json(with_files=False)
    if isolated.files:
        doc["files"] = None  # a placeholder: its key takes its sorted place
    parts = []
    for key in sorted(doc):
        if key == "files":
            body = ",".join(_encode_string(p) + ":" + _entry_json(isolated.files[p])
                            for p in sorted(isolated.files))
            parts.append('"files":{' + body + "}")
        else:
            parts.append(_encode_string(key) + ":" + _canonical(doc[key]))
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def hash_of(isolated: Isolated) -> str:
    """The digest of the canonical bytes of ``isolated`` under its own algo."""
    return digest_of(serialise(isolated), isolated.algo)


@dataclass(frozen=True)
class ResolvedTree:
    """A root ``.isolated`` merged with its includes: the files to map, and the run settings
    of the root (``command``, ``relative_cwd``, ``read_only``)."""

    root: Isolated
    files: Mapping[str, FileEntry]
    isolated_digests: tuple[str, ...]


Fetch = Callable[[str], Awaitable[bytes]]


async def resolve(root_digest: str, fetch: Fetch, algo: str = "sha-1",
                  verify: bool = True) -> ResolvedTree:
    """Fetch ``root_digest`` and its includes depth-first with ``fetch(digest) -> bytes``
    (each document is checked against its digest unless ``verify`` is False, for a fetch
    that already checked) and merge their files: a path already
    mapped is skipped, so the root wins over its includes and earlier includes over later
    ones.  An include reached again along the same chain is a cycle, an error; one reached
    again through another chain (a diamond) adds nothing and is fetched once."""
    files: dict[str, FileEntry] = {}
    seen: list[str] = []
    root: Isolated | None = None

    async def visit(digest: str, chain: tuple[str, ...]) -> None:
        nonlocal root
        check_digest(digest, algo)
        if digest in chain:
            cycle = " -> ".join((*chain[chain.index(digest):], digest))
            raise IsolatedFormatError(f"cycle in includes: {cycle}")
        if digest in seen:
            return
        seen.append(digest)
        data = await fetch(digest)
        actual = digest_of(data, algo) if verify else digest
        if actual != digest:
            raise IsolatedFormatError(f".isolated {digest} has content hashing to {actual}")
        doc = parse(data, algo)
        if root is None:
            root = doc
        for path, entry in doc.files.items():
            files.setdefault(path, entry)
        for include in doc.includes:
            await visit(include, (*chain, digest))

    await visit(root_digest, ())
    assert root is not None
    return ResolvedTree(root=root, files=files, isolated_digests=tuple(seen))
