"""``swarming``: trigger tasks on a Swarming v1 server, collect them live, query it.

::

    swarming trigger   -S URL -d pool NAME [-d K V]... [flags] [-- COMMAND...]
    swarming collect   -S URL (TASK_ID... | --json FILE) [--timeout S] [--decorate] ...
    swarming run       -S URL (the flags of trigger and of collect) [-- COMMAND...]
    swarming query     -S URL [-L N] PATH          e.g. 'tasks/list?state=PENDING'
    swarming query-list -S URL
    swarming bots      -S URL [-d K V]... [--dead-only | --keep-dead] [--bare]
    swarming cancel    -S URL [--kill-running] TASK_ID...
    swarming terminate -S URL [--wait] BOT_ID
    swarming reproduce -S URL [--work DIR] TASK_ID [-- EXTRA_ARGS...]
    swarming help [COMMAND]

The server is ``-S/--swarming`` or ``$SWARMING_SERVER``; ``--auth-token`` (or
``$SWARMING_AUTH_TOKEN``) is sent as a bearer token, to the Isolate server too.  ``collect``
prints each shard's output as it arrives, whole lines at a time.  Bad flags are one line on
stderr and exit status 2; any other failure one line and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from twisted.internet import defer, task, threads

from buildfarm.common import cascache, isolateclient
from buildfarm.common.cli import OneLineParser, UsageError, client_main, parse_command_line, run_client
from buildfarm.common.isolated import IsolatedFormatError, algo_for_namespace, check_digest
from buildfarm.common.swarmingclient import SwarmingServer, SwarmingServerError, is_final

PROG = "swarming"
DEFAULT_NAMESPACE = "default-gzip"
DEFAULT_PRIORITY = 200
DEFAULT_EXPIRATION_S = 6 * 3600
DEFAULT_HARD_TIMEOUT_S = 3600
DEFAULT_IO_TIMEOUT_S = 1200
DEFAULT_GRACE_PERIOD_S = 30
MIN_LAST_SLICE_EXPIRATION_S = 60  # what an --optional-dimension leaves the last slice at least
MAX_SHARDS = 1000
COLLECT_MARGIN_S = 10  # --json and run wait this long past a task's expiration and hard timeout
POLL_FIRST_S = 0.25  # collect polls this soon after output, and backs off to POLL_MAX_S
POLL_MAX_S = 2.0
POLL_GROWTH = 1.5
TERMINATE_TIMEOUT_S = 600
SECRET_BYTES_MAX = 20 * 1024
LIVE_STATES = ("PENDING", "RUNNING")
OUTPUT_MODES = ("console", "json", "all", "none")
ISOLATED_OUTDIR = "${ISOLATED_OUTDIR}"
TASK_ID = re.compile(r"[0-9a-f]{2,32}")
DIMENSION_KEY = re.compile(r"[a-zA-Z_.\-][0-9a-zA-Z_.\-]{0,63}")
ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
COMMANDS = {
    "trigger": "trigger a task (or --shards N of them) and print each one's id",
    "collect": "wait for tasks, printing their output live; exit status 0 only if each ended "
               "COMPLETED with exit 0",
    "run": "trigger, then collect",
    "query": "GET an API path (e.g. 'tasks/list?state=PENDING'), every page, as JSON",
    "query-list": "list the API's methods (from its discovery document)",
    "bots": "list the bots (slaves), with their dimensions and current task",
    "cancel": "cancel pending tasks (--kill-running: running ones too)",
    "terminate": "shut a bot down once its current work ends",
    "reproduce": "run a task here: its command, env and inputs, in a work directory",
    "help": "list the commands, or show one command's flags",
}


class CommandFailed(Exception):
    """A command that ran but did not succeed: its message, one line; exit status 1."""


# -- flags ----------------------------------------------------------------------------------

def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def _whole_seconds(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds")
    return int(text)


def _positive(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def _server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-S", "--swarming", metavar="URL", default=os.environ.get("SWARMING_SERVER"),
                        help="the Swarming server, e.g. http://127.0.0.1:8010 (default: $SWARMING_SERVER)")
    parser.add_argument("--auth-token", metavar="TOKEN", default=os.environ.get("SWARMING_AUTH_TOKEN"),
                        help="a bearer token for the Swarming and Isolate servers "
                             "(default: $SWARMING_AUTH_TOKEN; none: no credentials are sent)")


def _trigger_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--dimension", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="a dimension the bot must have (VALUE may be 'a|b'); 'pool' is required; "
                             "repeatable")
    parser.add_argument("--optional-dimension", nargs=3, action="append", default=[],
                        metavar=("KEY", "VALUE", "SECS"),
                        help="a dimension preferred for the first SECS seconds (an earlier task slice); "
                             "repeatable")
    parser.add_argument("-s", "--isolated", metavar="HASH", help="the .isolated tree to run from")
    parser.add_argument("-I", "--isolate-server", metavar="URL", default=os.environ.get("ISOLATE_SERVER"),
                        help="the Isolate server of --isolated (default: $ISOLATE_SERVER, else the -S "
                             "server)")
    parser.add_argument("--namespace", default=DEFAULT_NAMESPACE,
                        help=f"the Isolate namespace (default: {DEFAULT_NAMESPACE})")
    parser.add_argument("--raw-cmd", action="store_true",
                        help="the arguments after -- are the command (without it, they are extra "
                             "arguments for the .isolated's command)")
    parser.add_argument("--relative-cwd", metavar="DIR", help="run the command in this directory of the tree")
    parser.add_argument("-e", "--env", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="an environment variable; repeatable")
    parser.add_argument("--env-prefix", nargs=2, action="append", default=[], metavar=("KEY", "PATH"),
                        help="a path (relative to the task's directory) put before $KEY; repeatable")
    parser.add_argument("--idempotent", action="store_true",
                        help="the result may be served from an earlier identical task")
    parser.add_argument("--hard-timeout", type=_whole_seconds, default=DEFAULT_HARD_TIMEOUT_S, metavar="SECS",
                        help=f"the command's time limit (default: {DEFAULT_HARD_TIMEOUT_S})")
    parser.add_argument("--io-timeout", type=_whole_seconds, default=DEFAULT_IO_TIMEOUT_S, metavar="SECS",
                        help=f"the longest silence of the command (default: {DEFAULT_IO_TIMEOUT_S}; 0: none)")
    parser.add_argument("--grace-period", type=_whole_seconds, default=DEFAULT_GRACE_PERIOD_S, metavar="SECS",
                        help=f"between SIGTERM and SIGKILL (default: {DEFAULT_GRACE_PERIOD_S})")
    parser.add_argument("--expiration", type=_whole_seconds, default=DEFAULT_EXPIRATION_S, metavar="SECS",
                        help=f"how long the task may wait for a bot (default: {DEFAULT_EXPIRATION_S})")
    parser.add_argument("--priority", type=int, default=DEFAULT_PRIORITY, metavar="N",
                        help=f"0 (most urgent) to 255 (default: {DEFAULT_PRIORITY})")
    parser.add_argument("-T", "--task-name", metavar="NAME",
                        help="the task's name (default: USER/DIMENSIONS[/HASH])")
    parser.add_argument("--tags", action="append", default=[], metavar="KEY:VALUE", help="a tag; repeatable")
    parser.add_argument("--user", help="who the task is for (default: the server's name for the caller)")
    parser.add_argument("--named-cache", nargs=2, action="append", default=[], metavar=("NAME", "PATH"),
                        help="a cache kept on the bot between tasks, mapped at PATH; repeatable")
    parser.add_argument("--output", action="append", default=[], metavar="PATH",
                        help="a file the task leaves, returned in its outputs; repeatable")
    parser.add_argument("--secret-bytes-path", metavar="FILE",
                        help="a file whose bytes the task gets as a secret")
    parser.add_argument("--wait-for-capacity", action="store_true",
                        help="wait for a matching bot even when none is known")
    parser.add_argument("--shards", type=_positive, default=1, metavar="N",
                        help="trigger N tasks, each with GTEST_SHARD_INDEX and GTEST_TOTAL_SHARDS in its env")
    parser.add_argument("--dump-json", metavar="FILE",
                        help="write the tasks triggered (for collect --json) to FILE")
    parser.add_argument("command", nargs="*", metavar="COMMAND",
                        help="after --: the command (--raw-cmd) or the extra arguments")


def _collect_flags(parser: argparse.ArgumentParser, with_json: bool) -> None:
    if with_json:
        parser.add_argument("--json", metavar="FILE", help="collect the tasks of a trigger --dump-json FILE")
    parser.add_argument("-t", "--timeout", type=_seconds, metavar="SECS",
                        help="give up after SECS (default: none for task ids; with --json and for run, "
                             "each task's expiration and hard timeout plus 10 s)")
    parser.add_argument("--decorate", action="store_true",
                        help="prefix each line with its shard, and end each shard with a summary line")
    parser.add_argument("--print-status-updates", action="store_true",
                        help="print each shard's state changes on stderr")
    parser.add_argument("--task-summary-json", metavar="FILE",
                        help="write {\"shards\": [each shard's result]} to FILE")
    parser.add_argument("--task-output-dir", metavar="DIR",
                        help="write summary.json there, and each shard's outputs into DIR/<shard>/")
    parser.add_argument("--task-output-stdout", choices=OUTPUT_MODES, default="console",
                        help="where the output goes: console (the default), json (the summary), all, none")
    parser.add_argument("--perf", action="store_true", help="ask for the performance statistics")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Trigger, collect and query Swarming tasks.",
                           add_help=False)
    parser.add_argument("-h", "--help", action="store_true", help="list the commands")
    commands = parser.add_subparsers(dest="command_name", metavar="COMMAND", parser_class=OneLineParser)

    def add(name: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=COMMANDS[name], description=COMMANDS[name])
        if name != "help":
            _server_flags(sub)
        return sub

    _trigger_flags(add("trigger"))
    collect = add("collect")
    _collect_flags(collect, with_json=True)
    collect.add_argument("task_ids", nargs="*", metavar="TASK_ID")
    run = add("run")
    _trigger_flags(run)
    _collect_flags(run, with_json=False)
    query = add("query")
    query.add_argument("-L", "--limit", type=_positive, default=200, metavar="N",
                       help="at most N items (default: 200)")
    query.add_argument("path", metavar="PATH",
                       help="e.g. tasks/list, 'tasks/list?tags=purpose:ci', bots/count")
    add("query-list")
    bots = add("bots")
    bots.add_argument("-d", "--dimension", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                      help="only bots with this dimension; repeatable")
    dead = bots.add_mutually_exclusive_group()
    dead.add_argument("--dead-only", action="store_true", help="only the dead bots")
    dead.add_argument("--keep-dead", action="store_true", help="the dead bots too")
    bots.add_argument("--bare", action="store_true", help="only the bots' ids")
    cancel = add("cancel")
    cancel.add_argument("--kill-running", action="store_true", help="kill the tasks already running too")
    cancel.add_argument("task_ids", nargs="+", metavar="TASK_ID")
    terminate = add("terminate")
    terminate.add_argument("--wait", action="store_true", help="wait until the bot has shut down")
    terminate.add_argument("-t", "--timeout", type=_seconds, default=TERMINATE_TIMEOUT_S, metavar="SECS",
                           help=f"how long --wait waits (default: {TERMINATE_TIMEOUT_S})")
    terminate.add_argument("bot_id", metavar="BOT_ID")
    reproduce = add("reproduce")
    reproduce.add_argument("--work", metavar="DIR", default="work",
                           help="where the inputs go and the command runs (default: ./work; must not exist)")
    reproduce.add_argument("--out", metavar="DIR", default="out",
                           help="the ${ISOLATED_OUTDIR} of the command (default: ./out)")
    reproduce.add_argument("--cache", metavar="DIR", default="cache",
                           help="the local cache of Isolate items (default: ./cache)")
    reproduce.add_argument("-I", "--isolate-server", metavar="URL",
                           help="fetch the inputs from this server instead of the task's")
    reproduce.add_argument("task_id", metavar="TASK_ID")
    reproduce.add_argument("extra_args", nargs="*", metavar="EXTRA_ARG", help="after --: more arguments")
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


def _check_url(url: str | None, flag: str) -> None:
    if not re.match(r"https?://[^/\s]+", url or ""):
        raise UsageError(f"{flag} {url!r} is not an http:// or https:// URL")


def check_flags(args) -> None:
    """``UsageError`` for flags that cannot work together or have bad values (before anything
    is sent)."""
    if not args.swarming:
        raise UsageError("-S/--swarming URL is required (or $SWARMING_SERVER)")
    _check_url(args.swarming, "-S")
    name = args.command_name
    if name in ("trigger", "run"):
        trigger_bodies(args, "")  # every problem of the trigger flags, before anything is sent
    if name == "collect":
        if bool(args.json) == bool(args.task_ids):
            raise UsageError("give either task ids or --json FILE")
        for task_id in args.task_ids:
            _check_task_id(task_id)
    if name in ("cancel",):
        for task_id in args.task_ids:
            _check_task_id(task_id)
    if name == "reproduce":
        _check_task_id(args.task_id)
        if args.isolate_server:
            _check_url(args.isolate_server, "-I")
    if name == "bots":
        _check_dimensions(args.dimension, "-d")


def _check_task_id(task_id: str) -> None:
    if not TASK_ID.fullmatch(task_id):
        raise UsageError(f"{task_id!r} is not a task id (lower-case hex)")


def _check_dimensions(pairs, flag: str) -> None:
    for key, value in pairs:
        if not DIMENSION_KEY.fullmatch(key):
            raise UsageError(f"{flag}: {key!r} is not a dimension key")
        if not value:
            raise UsageError(f"{flag} {key}: the value is empty")


# -- trigger --------------------------------------------------------------------------------

def _pairs(items) -> list[dict]:
    return [{"key": k, "value": v} for k, v in items]


def _dimension_list(pairs) -> list[dict]:
    return _pairs(sorted((key, value) for key, value in pairs))


def _env_prefixes(pairs) -> list[dict]:
    merged: dict[str, list[str]] = {}
    for key, path in pairs:
        merged.setdefault(key, []).append(path)
    return [{"key": k, "value": v} for k, v in sorted(merged.items())]


def _secret_bytes(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(SECRET_BYTES_MAX + 1)
    except OSError as e:
        raise UsageError(f"--secret-bytes-path: {e.strerror or e}: {path}") from None
    if len(data) > SECRET_BYTES_MAX:
        raise UsageError(f"--secret-bytes-path: {path} is over {SECRET_BYTES_MAX} bytes")
    return base64.b64encode(data).decode("ascii")


def task_slices(args, properties: dict) -> list[dict]:
    """The slices of a request: one per distinct --optional-dimension expiration (each with the
    optional dimensions that still apply then, expirations as deltas), then the last with the
    base dimensions and what remains of --expiration (at least 60 s)."""
    by_expiration: dict[int, list[tuple[str, str]]] = {}
    for key, value, secs in args.optional_dimension:
        by_expiration.setdefault(int(secs), []).append((key, value))
    slices, elapsed = [], 0
    base = list(args.dimension)
    for expiration in sorted(by_expiration):
        extra = [pair for secs, pairs in by_expiration.items() if secs >= expiration for pair in pairs]
        slices.append({"expiration_secs": expiration - elapsed, "wait_for_capacity": args.wait_for_capacity,
                       "properties": {**properties, "dimensions": _dimension_list(base + extra)}})
        elapsed = expiration
    slices.append({"expiration_secs": max(args.expiration - elapsed, MIN_LAST_SLICE_EXPIRATION_S),
                   "wait_for_capacity": args.wait_for_capacity,
                   "properties": {**properties, "dimensions": _dimension_list(base)}})
    return slices


def _check_trigger_flags(args) -> None:
    _check_dimensions(args.dimension, "-d")
    _check_dimensions([(k, v) for k, v, _ in args.optional_dimension], "--optional-dimension")
    pools = [v for k, v in args.dimension if k == "pool"]
    if len(pools) != 1:
        raise UsageError("-d pool NAME is required, once")
    for key, _value, secs in args.optional_dimension:
        if not secs.isascii() or not secs.isdigit() or int(secs) < 1:
            raise UsageError(f"--optional-dimension {key}: {secs!r} is not a whole number of seconds >= 1")
        if int(secs) >= args.expiration:
            raise UsageError(f"--optional-dimension {key}: {secs} s is not before "
                             f"--expiration {args.expiration} s")
    for key, _ in [*args.env, *args.env_prefix]:
        if not ENV_KEY.fullmatch(key):
            raise UsageError(f"-e/--env-prefix: {key!r} is not an environment variable name")
    if not 0 <= args.priority <= 255:
        raise UsageError(f"--priority must be 0..255, not {args.priority}")
    for tag in args.tags:
        if ":" not in tag:
            raise UsageError(f"--tags {tag!r} is not KEY:VALUE")
    if args.raw_cmd and not args.command:
        raise UsageError("--raw-cmd needs a command after --")
    if not args.command and not args.isolated:
        raise UsageError("give a command after -- (with --raw-cmd), or -s/--isolated HASH")
    if args.command and not args.raw_cmd and not args.isolated:
        raise UsageError("the arguments after -- are a command only with --raw-cmd "
                         "(without it, they are extra arguments for -s/--isolated)")
    if args.isolated:
        try:
            check_digest(args.isolated, algo_for_namespace(args.namespace))
        except (IsolatedFormatError, ValueError) as e:
            raise UsageError(f"-s: {e}") from None
        if args.isolate_server:
            _check_url(args.isolate_server, "-I")
    if "GTEST_SHARD_INDEX" in dict(args.env) and args.shards > 1:
        raise UsageError("--shards sets GTEST_SHARD_INDEX and GTEST_TOTAL_SHARDS: do not give them with -e")
    if args.shards > MAX_SHARDS:
        raise UsageError(f"--shards must be at most {MAX_SHARDS}")


def default_task_name(args) -> str:
    """``USER/key=value_key=value[/HASH]``, as swarming.py names an unnamed task."""
    dims = "_".join(f"{k}={v}" for k, v in sorted(args.dimension))
    name = f"{args.user}/{dims}"
    return f"{name}/{args.isolated}" if args.isolated else name


def trigger_bodies(args, swarming_url: str) -> list[tuple[str, dict]]:
    """``(task name, tasks/new body)`` of each shard the trigger flags ask for.  With
    ``--shards N`` > 1, shard ``i`` is named ``NAME:i:N`` and has ``GTEST_SHARD_INDEX=i`` and
    ``GTEST_TOTAL_SHARDS=N`` in its env."""
    _check_trigger_flags(args)
    secret = _secret_bytes(args.secret_bytes_path)
    inputs_ref = None
    if args.isolated:
        inputs_ref = {"isolated": args.isolated, "isolatedserver": args.isolate_server or swarming_url,
                      "namespace": args.namespace}
    base_name = args.task_name or default_task_name(args)
    bodies = []
    for index in range(args.shards):
        env = list(args.env)
        name = base_name
        if args.shards > 1:
            env += [("GTEST_SHARD_INDEX", str(index)), ("GTEST_TOTAL_SHARDS", str(args.shards))]
            name = f"{base_name}:{index}:{args.shards}"
        properties = {
            "command": list(args.command) if args.raw_cmd else None,
            "extra_args": [] if args.raw_cmd else list(args.command),
            "relative_cwd": args.relative_cwd, "env": _pairs(env),
            "env_prefixes": _env_prefixes(args.env_prefix),
            "caches": [{"name": n, "path": p} for n, p in args.named_cache], "cipd_input": None,
            "execution_timeout_secs": args.hard_timeout, "grace_period_secs": args.grace_period,
            "idempotent": args.idempotent, "io_timeout_secs": args.io_timeout, "outputs": list(args.output),
            "inputs_ref": inputs_ref, "secret_bytes": secret,
        }
        bodies.append((name, {
            "name": name, "parent_task_id": os.environ.get("SWARMING_TASK_ID", ""), "priority": args.priority,
            "realm": None, "request_uuid": str(uuid.uuid4()), "pool_task_template": "AUTO",
            "tags": list(args.tags), "user": args.user, "task_slices": task_slices(args, properties),
        }))
    return bodies


def view_url(swarming_url: str, task_id: str) -> str:
    return f"{swarming_url.rstrip('/')}/tasks/{task_id}"


async def trigger(server: SwarmingServer, args, out: TextIO) -> dict:
    """Send each shard's ``tasks/new``; print ``<task id> <name>`` for each; the --dump-json
    document (``{base_task_name, tasks: {name: {shard_index, task_id, view_url}}, request}``)."""
    bodies = trigger_bodies(args, server.url)
    dump: dict[str, Any] = {"base_task_name": args.task_name or default_task_name(args), "tasks": {},
                            "request": bodies[0][1]}
    for index, (name, body) in enumerate(bodies):
        answer = await server.new_task(body)
        task_id = answer["task_id"]
        dump["tasks"][name] = {"shard_index": index, "task_id": task_id,
                               "view_url": view_url(server.url, task_id)}
        out.write(f"{task_id} {name}\n")
        out.flush()
    if args.dump_json:
        await threads.deferToThread(_write_json, args.dump_json, dump)
    return dump


def _write_json(path: str, value) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")


def collect_timeout(requests: Sequence[dict]) -> float:
    """How long ``collect --json`` and ``run`` wait: the longest of each request's slice
    expirations plus its hard timeout, plus 10 s."""
    longest = 0
    for request in requests:
        slices = request.get("task_slices") or []
        expirations = sum(int(s.get("expiration_secs") or 0) for s in slices)
        hard = max((int((s.get("properties") or {}).get("execution_timeout_secs") or 0) for s in slices),
                   default=0)
        longest = max(longest, expirations + hard)
    return float(longest + COLLECT_MARGIN_S)


# -- collect --------------------------------------------------------------------------------

def _parse_ts(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass
class Shard:
    """One task collected: where its output stands, what it printed, its last result."""

    index: int
    task_id: str
    offset: int = 0  # bytes of output read
    output: list[str] = field(default_factory=list)
    partial: str = ""  # the output after its last newline, not printed yet
    result: dict | None = None
    state: str | None = None
    timed_out: bool = False

    @property
    def text(self) -> str:
        return "".join(self.output)


def shard_exit_code(shard: Shard) -> int:
    """0 when the shard's task ended COMPLETED with exit 0; its exit code (1..255) when it ended
    COMPLETED with another; 1 otherwise."""
    result = shard.result or {}
    if shard.timed_out or result.get("state") != "COMPLETED":
        return 1
    try:
        code = int(result.get("exit_code", 1))
    except (TypeError, ValueError):
        return 1
    return code if 0 <= code <= 255 else 1


def exit_status(shards: Sequence[Shard]) -> int:
    """``collect``'s exit status: 0 if every shard succeeded, else the first failing shard's."""
    for shard in shards:
        code = shard_exit_code(shard)
        if code:
            return code
    return 0


def summary(shards: Sequence[Shard], with_output: bool) -> dict:
    """``{"shards": [...]}`` as swarming.py's collect writes it: each shard's TaskResult (None
    when none was read), with its ``output`` when asked."""
    entries = []
    for shard in shards:
        if shard.result is None:
            entries.append(None)
            continue
        entry = dict(shard.result)
        if with_output:
            entry["output"] = shard.text
        entries.append(entry)
    return {"shards": entries}


def footer(shard: Shard) -> str:
    """The line --decorate ends a shard with."""
    result = shard.result or {}
    state = "TIMED OUT waiting" if shard.timed_out else result.get("state", "?")
    parts = [f"[shard {shard.index}] {shard.task_id} ended {state}"]
    if "exit_code" in result:
        parts.append(f"exit {result['exit_code']}")
    if result.get("bot_id"):
        parts.append(f"on {result['bot_id']}")
    created, started = _parse_ts(result.get("created_ts")), _parse_ts(result.get("started_ts"))
    if created and started:
        parts.append(f"pending {(started - created).total_seconds():.1f} s")
    if isinstance(result.get("duration"), int | float):
        parts.append(f"duration {result['duration']:.1f} s")
    if result.get("deduped_from"):
        parts.append(f"deduped from {result['deduped_from']}")
    return ", ".join(parts)


class Collector:
    """Waits for tasks, each polled on its own: ``task/<id>/stdout`` from the byte offset read so
    far (printed as whole lines as soon as they arrive), until its state is final; then its
    result.  The output poll starts again ``POLL_FIRST_S`` after new output and backs off to
    ``POLL_MAX_S`` while there is none.  ``clock``: the reactor's time."""

    def __init__(self, server, task_ids: Sequence[str], clock, out: TextIO, err: TextIO, *,
                 timeout: float | None = None, decorate: bool = False, print_status: bool = False,
                 to_console: bool = True, performance_stats: bool = False):
        self.server = server
        self.shards = [Shard(i, task_id) for i, task_id in enumerate(task_ids)]
        self.clock = clock
        self.out, self.err = out, err
        self.deadline = None if timeout is None else clock.seconds() + timeout
        self.decorate = decorate
        self.print_status = print_status
        self.to_console = to_console
        self.performance_stats = performance_stats

    async def collect(self) -> list[Shard]:
        """Every shard, once each has ended (or the timeout passed); the first error of any."""
        try:
            await defer.gatherResults([defer.ensureDeferred(self._shard(s)) for s in self.shards],
                                      consumeErrors=True)
        except defer.FirstError as e:
            e.subFailure.raiseException()
        return self.shards

    async def _shard(self, shard: Shard) -> None:
        delay = POLL_FIRST_S
        while True:
            answer = await self.server.stdout(shard.task_id, shard.offset)
            state = answer.get("state")
            done = state not in LIVE_STATES  # any state but these ends the wait, as in swarming.py
            got = self._take(shard, answer.get("output") or "", final=done)
            if state != shard.state:
                self._status(shard, state)
                shard.state = state
            if done and not got:
                break
            if done:
                continue  # read the output to its end before the result
            delay = POLL_FIRST_S if got else min(delay * POLL_GROWTH, POLL_MAX_S)
            if self.deadline is not None and self.clock.seconds() + delay > self.deadline:
                shard.timed_out = True
                break
            await task.deferLater(self.clock, delay, lambda: None)
        shard.result = await self.server.result(shard.task_id, self.performance_stats)
        if shard.result.get("deduped_from") and not shard.offset:
            await self._read_all(shard, shard.result["deduped_from"])
        self._flush(shard)
        if self.decorate:
            self._print(footer(shard) + "\n")
        if shard.timed_out:
            self.err.write(f"{PROG}: gave up waiting for shard {shard.index} (task {shard.task_id}, "
                           f"{shard.state}) after the timeout\n")
            self.err.flush()

    async def _read_all(self, shard: Shard, task_id: str) -> None:
        """The output of the task ``shard``'s was served from."""
        offset = 0
        while True:
            answer = await self.server.stdout(task_id, offset)
            text = answer.get("output") or ""
            if not text:
                return
            offset += len(text.encode("utf-8"))
            shard.output.append(text)
            self._lines(shard, text)

    def _take(self, shard: Shard, text: str, final: bool) -> bool:
        """Keep and print the new output ``text``; whether there was any.  A live read that ends
        inside a UTF-8 character (shown as U+FFFD) leaves that character for the next read."""
        if not final:
            kept = text.rstrip("\ufffd")
            text = kept
        if not text:
            return False
        shard.offset += len(text.encode("utf-8"))
        shard.output.append(text)
        self._lines(shard, text)
        return True

    def _lines(self, shard: Shard, text: str) -> None:
        pending = shard.partial + text
        complete, _, shard.partial = pending.rpartition("\n")
        if complete or pending.endswith("\n"):
            self._print_lines(shard, complete + "\n")

    def _flush(self, shard: Shard) -> None:
        if shard.partial:
            self._print_lines(shard, shard.partial + "\n")
            shard.partial = ""

    def _print_lines(self, shard: Shard, text: str) -> None:
        if not self.to_console:
            return
        if self.decorate:
            text = "".join(f"[shard {shard.index}] {line}\n" for line in text.splitlines())
        self._print(text)

    def _print(self, text: str) -> None:
        if self.to_console:
            self.out.write(text)
            self.out.flush()

    def _status(self, shard: Shard, state: str | None) -> None:
        if self.print_status:
            self.err.write(f"{PROG}: shard {shard.index} (task {shard.task_id}): {state}\n")
            self.err.flush()


async def collect(server: SwarmingServer, reactor, task_ids: Sequence[str], args, out: TextIO,
                  err: TextIO, timeout: float | None) -> int:
    """Collect ``task_ids`` as the collect flags say; the exit status."""
    mode = args.task_output_stdout
    collector = Collector(server, task_ids, reactor, out, err, timeout=timeout, decorate=args.decorate,
                          print_status=args.print_status_updates, to_console=mode in ("console", "all"),
                          performance_stats=args.perf)
    shards = await collector.collect()
    document = summary(shards, with_output=mode in ("json", "all"))
    if args.task_summary_json:
        await threads.deferToThread(_write_json, args.task_summary_json, document)
    if args.task_output_dir:
        await threads.deferToThread(_write_json, os.path.join(args.task_output_dir, "summary.json"), document)
        for shard in shards:
            ref = (shard.result or {}).get("outputs_ref")
            if ref and ref.get("isolated"):
                await fetch_tree(reactor, ref, os.path.join(args.task_output_dir, str(shard.index)),
                                 os.path.join(args.task_output_dir, ".cache"), args.auth_token)
    return exit_status(shards)


def _tasks_of_dump(path: str) -> tuple[list[str], dict]:
    try:
        with open(path, encoding="utf-8") as f:
            dump = json.load(f)
        tasks = sorted(dump["tasks"].values(), key=lambda t: int(t["shard_index"]))
        ids = [str(t["task_id"]) for t in tasks]
    except OSError as e:
        raise UsageError(f"--json: {e.strerror or e}: {path}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(f"--json: {path} is not a trigger --dump-json file") from None
    for task_id in ids:
        _check_task_id(task_id)
    return ids, dump.get("request") or {}


# -- the Isolate side: collect's outputs and reproduce's inputs -------------------------------

async def fetch_tree(reactor, ref: dict, target: str, cache_dir: str, token: str | None,
                     server_url: str | None = None) -> isolateclient.DownloadResult:
    """Download the ``.isolated`` of ``ref`` (``{isolated, isolatedserver, namespace}``) into
    ``target`` through the cache at ``cache_dir``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    namespace = ref.get("namespace") or DEFAULT_NAMESPACE
    isolate = isolateclient.IsolateServer(server_url or ref["isolatedserver"], namespace, reactor=reactor,
                                          headers=headers)
    cache = await threads.deferToThread(_open_cache, cache_dir, reactor, isolate.algo)
    try:
        result = await isolateclient.download_tree(isolate, ref["isolated"], os.path.abspath(target), cache,
                                                   reactor=reactor)
        await threads.deferToThread(cache.trim)
    finally:
        await isolate.close()
    return result


def _open_cache(path: str, reactor, algo: str) -> cascache.DiskCache:
    cache = cascache.DiskCache(path, cascache.CachePolicies(), reactor, algo=algo)
    cache.cleanup()
    return cache


# -- reproduce ------------------------------------------------------------------------------

@dataclass
class LocalRun:
    """What ``reproduce`` runs: the argv, its working directory and environment."""

    argv: list[str]
    cwd: str
    env: dict[str, str]


def local_run(properties: dict, work: str, out_dir: str, extra_args: Sequence[str],
              tree_command: Sequence[str] | None = None, tree_cwd: str | None = None,
              base_env: dict[str, str] | None = None) -> LocalRun:
    """The local run of a task's ``properties`` in ``work``: its command (or the ``.isolated``'s)
    with its extra args and ``extra_args``, ``${ISOLATED_OUTDIR}`` as ``out_dir``, in
    ``work/relative_cwd``, with its env over ``base_env`` and its env prefixes (relative to
    ``work``) before the variable's value."""
    command = list(properties.get("command") or tree_command or [])
    if not command:
        raise CommandFailed("the task has no command (neither in its request nor in its .isolated)")
    argv = [a.replace(ISOLATED_OUTDIR, out_dir) for a in
            [*command, *(properties.get("extra_args") or []), *extra_args]]
    relative = properties.get("relative_cwd") or tree_cwd or ""
    env = dict(os.environ if base_env is None else base_env)
    for pair in properties.get("env") or []:
        if pair.get("value") is None or pair.get("value") == "":
            env.pop(pair["key"], None)
        else:
            env[pair["key"]] = pair["value"].replace(ISOLATED_OUTDIR, out_dir)
    for pair in properties.get("env_prefixes") or []:
        paths = [os.path.join(work, p) for p in pair.get("value") or []]
        current = env.get(pair["key"])
        env[pair["key"]] = os.pathsep.join(paths + ([current] if current else []))
    return LocalRun(argv, os.path.join(work, relative) if relative else work, env)


async def reproduce(server: SwarmingServer, reactor, args, err: TextIO) -> int:
    """Fetch the task's request and inputs, run its command here; its exit status."""
    request = await server.request(args.task_id)
    result = await server.result(args.task_id)
    slices = request.get("task_slices") or []
    if not slices and request.get("properties"):
        slices = [{"properties": request["properties"]}]
    try:
        properties = slices[int(result.get("current_task_slice") or 0)]["properties"]
    except (IndexError, KeyError, ValueError):
        raise CommandFailed(f"task {args.task_id}'s request has no slice to run") from None
    work, out_dir = os.path.abspath(args.work), os.path.abspath(args.out)
    if os.path.exists(work) and os.listdir(work):
        raise CommandFailed(f"{work} is not empty: remove it, or give another --work")
    os.makedirs(work, exist_ok=True)
    tree_command = tree_cwd = None
    inputs = properties.get("inputs_ref")
    if inputs and inputs.get("isolated"):
        fetched = await fetch_tree(reactor, inputs, work, os.path.abspath(args.cache), args.auth_token,
                                   args.isolate_server)
        tree_command, tree_cwd = fetched.command, fetched.relative_cwd
    if properties.get("secret_bytes"):
        err.write(f"{PROG}: the task's secret bytes are not given out: the command runs without them\n")
    if properties.get("caches"):
        err.write(f"{PROG}: the task's named caches start empty here\n")
    run = local_run(properties, work, out_dir, args.extra_args, tree_command, tree_cwd)
    if any(ISOLATED_OUTDIR in a for a in [*(properties.get("command") or []), *(tree_command or [])]):
        os.makedirs(out_dir, exist_ok=True)
    if not os.path.isdir(run.cwd):
        raise CommandFailed(f"the task's directory {run.cwd} is not in its inputs")
    err.write(f"{PROG}: running {' '.join(run.argv)} in {run.cwd}\n")
    err.flush()
    try:
        code = await threads.deferToThread(subprocess.call, run.argv, cwd=run.cwd, env=run.env)
    except OSError as e:
        raise CommandFailed(f"cannot run {run.argv[0]}: {e.strerror or e}") from None
    err.write(f"{PROG}: exit code {code}\n")
    err.flush()
    return code if 0 <= code <= 255 else 1


# -- query, bots, cancel, terminate ----------------------------------------------------------

async def query(server: SwarmingServer, args, out: TextIO) -> None:
    answer = await server.query(args.path, args.limit)
    out.write(json.dumps(answer, indent=2, sort_keys=True) + "\n")


async def query_list(server: SwarmingServer, out: TextIO) -> None:
    for document in await server.discovery():
        out.write(f"{document.get('id', document.get('name', '?'))}: {document.get('description', '')}\n")
        resources = (document.get("resources") or {}).values()
        methods = [m for r in resources for m in (r.get("methods") or {}).values()]
        for method in sorted(methods, key=lambda m: str(m.get("id"))):
            out.write(f"  {method.get('id')}: {method.get('httpMethod')} {method.get('path')}\n")
            if method.get("description"):
                out.write(f"      {method['description']}\n")


async def bots(server: SwarmingServer, args, out: TextIO) -> None:
    is_dead = "TRUE" if args.dead_only else "NONE" if args.keep_dead else "FALSE"
    for bot in await server.bots(args.dimension, is_dead=is_dead):
        out.write(f"{bot['bot_id']}\n")
        if args.bare:
            continue
        dimensions = {d["key"]: d["value"] for d in bot.get("dimensions") or []}
        out.write(f"  {json.dumps(dimensions, sort_keys=True)}\n")
        if bot.get("task_id"):
            out.write(f"  task: {bot['task_id']}\n")
        if bot.get("is_dead"):
            out.write("  dead\n")


async def cancel(server: SwarmingServer, args, out: TextIO) -> int:
    status = 0
    for task_id in args.task_ids:
        answer = await server.cancel(task_id, args.kill_running)
        if answer.get("ok"):
            out.write(f"{task_id}: {'killed' if answer.get('was_running') else 'canceled'}\n")
        else:
            status = 1
            why = "it is running (see --kill-running)" if answer.get("was_running") else "it has ended"
            out.write(f"{task_id}: not canceled: {why}\n")
    return status


async def terminate(server: SwarmingServer, reactor, args, out: TextIO) -> int:
    answer = await server.terminate(args.bot_id)
    task_id = answer.get("task_id") or ""
    out.write(f"{args.bot_id}: terminating{f' (task {task_id})' if task_id else ''}\n")
    out.flush()
    if not args.wait:
        return 0
    deadline = reactor.seconds() + args.timeout
    delay = POLL_FIRST_S
    while reactor.seconds() < deadline:
        if task_id:
            if is_final((await server.result(task_id))["state"]):
                break
        else:
            try:
                bot = await server.bot(args.bot_id)
            except SwarmingServerError as e:
                if e.status == 404:
                    break
                raise
            if _bot_gone(bot):
                break
        await task.deferLater(reactor, delay, lambda: None)
        delay = min(delay * POLL_GROWTH, POLL_MAX_S)
    else:
        raise CommandFailed(f"{args.bot_id} was still up after {args.timeout:g} s")
    out.write(f"{args.bot_id}: terminated\n")
    return 0


def _bot_gone(bot: dict) -> bool:
    """Whether a ``bot/<id>/get`` answer shows the bot no longer connected."""
    if bot.get("is_dead") or bot.get("deleted"):
        return True
    try:
        state = json.loads(bot.get("state") or "{}")
    except ValueError:
        return False
    return isinstance(state, dict) and state.get("attached") is False


# -- running a command line -------------------------------------------------------------------

def _parse(argv: Sequence[str]) -> tuple[argparse.Namespace | None, int]:
    """The parsed flags of a command to run, or (None, exit status) once help was printed."""
    args, status = parse_command_line(build_parser(), argv, "command_name", command_list(), COMMANDS)
    if args is None:
        return None, status
    check_flags(args)
    if args.command_name == "collect" and args.json:
        args.task_ids, args.dumped_request = _tasks_of_dump(args.json)
    return args, 0


async def _run(reactor, args) -> int:
    server = SwarmingServer(args.swarming, reactor=reactor, token=args.auth_token)
    out, err = sys.stdout, sys.stderr
    name = args.command_name
    try:
        if name == "trigger":
            dump = await trigger(server, args, out)
            ids = " ".join(t["task_id"] for t in dump["tasks"].values())
            err.write(f"To collect: {PROG} collect -S {server.url} {ids}\n")
            return 0
        if name == "run":
            dump = await trigger(server, args, out)
            ids = [t["task_id"] for t in sorted(dump["tasks"].values(), key=lambda t: t["shard_index"])]
            timeout = args.timeout if args.timeout is not None else collect_timeout([dump["request"]])
            return await collect(server, reactor, ids, args, out, err, timeout)
        if name == "collect":
            timeout = args.timeout
            if timeout is None and args.json:
                timeout = collect_timeout([args.dumped_request])
            return await collect(server, reactor, args.task_ids, args, out, err, timeout)
        if name == "query":
            await query(server, args, out)
        elif name == "query-list":
            await query_list(server, out)
        elif name == "bots":
            await bots(server, args, out)
        elif name == "cancel":
            return await cancel(server, args, out)
        elif name == "terminate":
            return await terminate(server, reactor, args, out)
        elif name == "reproduce":
            return await reproduce(server, reactor, args, err)
        return 0
    finally:
        out.flush()
        await server.close()


# failures told as one line, exit status 1
FAILURES = (SwarmingServerError, isolateclient.IsolateServerError, CommandFailed, cascache.NoMoreSpace,
            cascache.MappingError)


def run(argv: Sequence[str]) -> int:
    """Run the command line ``argv`` (without the program name); its exit status."""
    return run_client(PROG, argv, _parse, _run, FAILURES)


def main() -> None:
    """The console script."""
    client_main(PROG, run)


if __name__ == "__main__":
    main()


__all__ = ["Collector", "LocalRun", "Shard", "build_parser", "collect_timeout", "exit_status", "local_run",
           "run", "summary", "task_slices", "trigger_bodies"]
