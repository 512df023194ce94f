"""``isolateserver``: archive files and trees to an Isolate server, download them from it.

::

    isolateserver archive  -I URL [--namespace NS] [--blacklist RE]... PATH...
    isolateserver download -I URL [--namespace NS] (-s HASH | -f HASH DEST ...) -t DIR
                           [--cache DIR] [--max-cache-size N] [--min-free-space N]
                           [--max-items N] [--max-age T]
    isolateserver help [COMMAND]

``archive`` prints ``<hash> <path>`` for each path; both print their statistics on stderr at
the end.  Credentials: ``--token`` (or ``$ISOLATE_TOKEN``), sent as a Bearer token, or
``--user``/``--password`` (or ``$ISOLATE_PASSWORD``), sent as Basic.  Any failure is one line
on stderr and exit status 1 (2 for bad flags), never a traceback.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import sys
from collections.abc import Sequence

from twisted.internet import threads

from buildfarm.common import cascache, isolateclient
from buildfarm.common.cli import OneLineParser, UsageError, client_main, parse_command_line, run_client
from buildfarm.common.isolated import IsolatedFormatError, algo_for_namespace, check_digest

PROG = "isolateserver"
DEFAULT_NAMESPACE = "default-gzip"
DEFAULT_CACHE = "cache"  # relative to the current directory, as in Isolate's client
DIGEST_CACHE_DIR = "buildfarm-isolateserver"
THREADS = 8
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
COMMANDS = {
    "archive": "upload files and directories (a directory as an .isolated of its tree); "
               "prints '<hash> <path>' for each",
    "download": "download an .isolated tree (-s) or single files (-f) into a directory, "
                "through a local cache",
    "help": "list the commands, or show one command's flags",
}


def _size(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([kmgt]?)(?:i?b)?", text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (a number of bytes, or with K, M, G, T)")
    return int(match.group(1)) * SIZE_UNITS[match.group(2)]


def _age(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([smhd]?)", text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age (seconds, or with s, m, h, d)")
    return int(match.group(1)) * AGE_UNITS[match.group(2)]


def _server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-I", "--isolate-server", metavar="URL", default=os.environ.get("ISOLATE_SERVER"),
                        help="the server, e.g. http://127.0.0.1:8010 (default: $ISOLATE_SERVER)")
    parser.add_argument("--namespace", default=DEFAULT_NAMESPACE,
                        help=f"the namespace (default: {DEFAULT_NAMESPACE})")
    parser.add_argument("--token", default=os.environ.get("ISOLATE_TOKEN"),
                        help="a bearer token (default: $ISOLATE_TOKEN)")
    parser.add_argument("--user", help="a user name for Basic authentication")
    parser.add_argument("--password", default=os.environ.get("ISOLATE_PASSWORD"),
                        help="the password of --user (default: $ISOLATE_PASSWORD)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Archive to and download from an Isolate server.",
                     add_help=False)
    parser.add_argument("-h", "--help", action="store_true", help="list the commands")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    archive = commands.add_parser("archive", help=COMMANDS["archive"], description=COMMANDS["archive"])
    _server_flags(archive)
    archive.add_argument("--blacklist", action="append", default=[], metavar="RE",
                         help="leave out paths (relative to a directory archived) matching this regex; "
                              "may be repeated")
    archive.add_argument("--digest-cache", metavar="FILE",
                         help="the (inode, size, mtime) -> digest cache, so an unchanged file is not "
                              "hashed again (default: ~/.cache/buildfarm-isolateserver/digests-<algo>.json)")
    archive.add_argument("--no-digest-cache", action="store_true", help="hash every file")
    archive.add_argument("paths", nargs="+", metavar="PATH")

    download = commands.add_parser("download", help=COMMANDS["download"], description=COMMANDS["download"])
    _server_flags(download)
    download.add_argument("-s", "--isolated", metavar="HASH", help="the .isolated tree to download")
    download.add_argument("-f", "--file", nargs=2, action="append", default=[], metavar=("HASH", "DEST"),
                          help="a single file to download as DEST (relative to -t); may be repeated")
    download.add_argument("-t", "--target", metavar="DIR", default=".",
                          help="where to put the tree or files (default: the current directory)")
    download.add_argument("--cache", metavar="DIR", default=DEFAULT_CACHE,
                          help=f"the local cache (default: ./{DEFAULT_CACHE})")
    defaults = cascache.CachePolicies()
    download.add_argument("--max-cache-size", type=_size, default=defaults.max_cache_size, metavar="SIZE",
                          help="trim the cache to this size (default: 50G; 0: no limit)")
    download.add_argument("--min-free-space", type=_size, default=defaults.min_free_space, metavar="SIZE",
                          help="keep this much disk free (default: 2G; 0: no limit)")
    download.add_argument("--max-items", type=int, default=defaults.max_items, metavar="N",
                          help=f"keep at most N items (default: {defaults.max_items}; 0: no limit)")
    download.add_argument("--max-age", type=_age, default=0, metavar="AGE",
                          help="evict items unused for this long, e.g. 21d (default: 0, no limit)")

    helper = commands.add_parser("help", help=COMMANDS["help"], description=COMMANDS["help"])
    helper.add_argument("topic", nargs="?", metavar="COMMAND")
    parser.subcommands = commands  # type: ignore[attr-defined]
    return parser


def command_list() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} COMMAND [FLAGS]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    lines += ["", f"'{PROG} help COMMAND' shows a command's flags."]
    return "\n".join(lines)


def _headers(args) -> dict[str, str]:
    if args.token and args.user:
        raise UsageError("give --token or --user, not both")
    if args.token:
        return {"Authorization": f"Bearer {args.token}"}
    if args.user:
        if args.password is None:
            raise UsageError("--user needs --password (or $ISOLATE_PASSWORD)")
        pair = base64.b64encode(f"{args.user}:{args.password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {pair}"}
    return {}


def check_flags(args) -> None:
    """``UsageError`` for flags that cannot work together or have bad values (before anything
    starts)."""
    if not args.isolate_server:
        raise UsageError("-I/--isolate-server URL is required (or $ISOLATE_SERVER)")
    if not re.match(r"https?://[^/\s]+", args.isolate_server):
        raise UsageError(f"-I {args.isolate_server!r} is not an http:// or https:// URL")
    if not re.fullmatch(r"[a-zA-Z0-9._\-]{1,64}", args.namespace):
        raise UsageError(f"--namespace {args.namespace!r} is not a namespace name")
    _headers(args)
    if args.command == "download":
        if bool(args.isolated) == bool(args.file):
            raise UsageError("give either -s HASH or -f HASH DEST (one or more)")
        algo = algo_for_namespace(args.namespace)
        if args.isolated:
            _check_digest(args.isolated, algo, "-s")
        for digest, _ in args.file:
            _check_digest(digest, algo, "-f")
        _policies(args)


def _policies(args) -> cascache.CachePolicies:
    try:
        return cascache.CachePolicies(max_cache_size=args.max_cache_size, min_free_space=args.min_free_space,
                                      max_items=args.max_items, max_age_secs=args.max_age)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _server(args, reactor) -> isolateclient.IsolateServer:
    return isolateclient.IsolateServer(args.isolate_server, args.namespace, reactor=reactor,
                                       headers=_headers(args))


def _digest_cache_path(args, algo: str) -> str | None:
    if args.no_digest_cache:
        return None
    if args.digest_cache:
        return args.digest_cache
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, DIGEST_CACHE_DIR)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return None  # only an optimisation
    return os.path.join(directory, f"digests-{algo}.json")


async def _archive(reactor, args, out) -> None:
    server = _server(args, reactor)
    try:
        result = await isolateclient.archive(server, args.paths, blacklist=args.blacklist,
                                             digest_cache_path=_digest_cache_path(args, server.algo),
                                             reactor=reactor)
    finally:
        await server.close()
    for digest, path in result.items:
        out.write(f"{digest} {path}\n")
    out.flush()
    print(f"{PROG}: {result.stats}", file=sys.stderr)


def _check_digest(digest: str, algo: str, flag: str) -> str:
    try:
        return check_digest(digest, algo)
    except IsolatedFormatError as e:
        raise UsageError(f"{flag}: {e}") from None


async def _download(reactor, args) -> None:
    server = _server(args, reactor)
    target = os.path.abspath(args.target)
    cache = await threads.deferToThread(_open_cache, args.cache, _policies(args), reactor, server.algo)
    try:
        if args.isolated:
            result = await isolateclient.download_tree(server, args.isolated, target, cache, reactor=reactor)
            stats = result.stats
        else:
            files = [(d, os.path.join(target, dest)) for d, dest in args.file]
            stats = await isolateclient.download_files(server, files, cache, reactor=reactor)
        await threads.deferToThread(cache.trim)
    finally:
        await server.close()
    print(f"{PROG}: {stats}", file=sys.stderr)


def _open_cache(path: str, policies, reactor, algo: str) -> cascache.DiskCache:
    cache = cascache.DiskCache(path, policies, reactor, algo=algo)
    cache.cleanup()
    return cache


def _parse(argv: Sequence[str]) -> tuple[argparse.Namespace | None, int]:
    """The parsed flags of a command to run, or (None, exit status) once help was printed."""
    args, status = parse_command_line(build_parser(), argv, "command", command_list(), COMMANDS)
    if args is None:
        return None, status
    check_flags(args)
    return args, 0


async def _run(reactor, args) -> None:
    reactor.getThreadPool().adjustPoolsize(maxthreads=THREADS)
    if args.command == "archive":
        await _archive(reactor, args, sys.stdout)
    else:
        await _download(reactor, args)


# failures told as one line, exit status 1
FAILURES = (isolateclient.IsolateServerError, cascache.NoMoreSpace, cascache.MappingError, ValueError)


def run(argv: Sequence[str]) -> int:
    """Run the command line ``argv`` (without the program name); its exit status."""
    return run_client(PROG, argv, _parse, _run, FAILURES)


def main() -> None:
    """The console script."""
    client_main(PROG, run)


if __name__ == "__main__":
    main()
