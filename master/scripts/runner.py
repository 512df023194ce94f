"""The ``buildmaster`` command: create-master, start, stop, restart, checkconfig, upgrade-master.

Every failure is a clear message and exit status 1; never a traceback.
"""

import argparse
import json
import os
import secrets
import signal
import sys
import urllib.error
import urllib.request
from importlib import resources
from string import Template

from buildfarm.common.cli import CLIError, run_command
from buildfarm.common.daemon import (
    follow_log,
    log_offset,
    log_tail,
    read_pid,
    start_daemon,
    stop_daemon,
)
from buildfarm.master.config import (
    DEFAULT_DB_URL,
    DEFAULT_PB_PORT,
    DEFAULT_WWW_PORT,
    ConfigErrors,
    MasterConfig,
    load_config,
)
from buildfarm.master.scripts.tacfile import tac_text
from buildfarm.master.service import RECONFIG_DONE_MESSAGE, RECONFIG_FAILED_MESSAGE

PROG = "buildmaster"
CONFIG_FILE = "master.cfg"
READY_PATTERNS = [r"BuildMaster is running"]
FAILURE_PATTERNS = [r"BuildMaster failed to start"]
RECONFIG_TIMEOUT_S = 60.0
SECRET_ENV = "BUILDFARM_CHANGE_SECRET"
# Random bytes of the password create-master gives the sample config's admin user.
ADMIN_PASSWORD_BYTES = 12


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Create and run a buildfarm master.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    create = sub.add_parser("create-master", help="make a new master basedir")
    create.add_argument("basedir")
    create.add_argument("--force", action="store_true", help="write into an existing basedir")
    create.add_argument("--relocatable", action="store_true",
                        help="buildbot.tac finds the basedir from its own location")
    create.add_argument("--db", default=DEFAULT_DB_URL, help="database URL (default: %(default)s)")
    create.add_argument("--pb-port", type=_port, default=DEFAULT_PB_PORT,
                        help="port slaves connect to (default: %(default)s)")
    create.add_argument("--www-port", type=_port, default=DEFAULT_WWW_PORT,
                        help="web/API port (default: %(default)s)")
    create.add_argument("--config", help="use this master.cfg instead of the sample")
    reconfig = sub.add_parser("reconfig", help="reload master.cfg in the running master")
    reconfig.add_argument("basedir", nargs="?", default=".")
    send = sub.add_parser("sendchange", help="tell a master about a new change (commit)")
    send.add_argument("files", nargs="*", help="files the change touched")
    send.add_argument("--master", default=f"http://localhost:{DEFAULT_WWW_PORT}",
                      help="the master's web URL (default: %(default)s)")
    send.add_argument("--secret", help=f"the change hook's secret (default: ${SECRET_ENV})")
    send.add_argument("--who", "--author", dest="author", default=os.environ.get("USER", "unknown"))
    send.add_argument("--branch")
    send.add_argument("--revision")
    send.add_argument("--repository", default="")
    send.add_argument("--project", default="")
    send.add_argument("--codebase", default="")
    send.add_argument("--category")
    send.add_argument("--comments", default="")
    send.add_argument("--property", action="append", default=[], metavar="NAME:VALUE")
    for name, text in (("start", "start the master daemon and wait until it is up"),
                       ("stop", "stop the master daemon"),
                       ("restart", "check the config, then stop and start the master"),
                       ("upgrade-master", "create or upgrade the master's database schema")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("basedir", nargs="?", default=".")
    check = sub.add_parser("checkconfig", help="validate master.cfg")
    check.add_argument("path", nargs="?", default=".", help="a basedir or a config file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "create-master": create_master, "start": start, "stop": stop, "restart": restart,
        "checkconfig": checkconfig, "upgrade-master": upgrade_master, "reconfig": reconfig,
        "sendchange": sendchange,
    }
    return run_command(PROG, lambda: commands[args.command](args))


def _load(basedir_or_file: str) -> MasterConfig:
    path = basedir_or_file
    if os.path.isdir(path):
        path = os.path.join(path, CONFIG_FILE)
    if not os.path.exists(path):
        raise CLIError(f"no {CONFIG_FILE} at {path}")
    try:
        return load_config(path)
    except ConfigErrors as e:
        for warning in e.warnings:
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
        for error in e.errors:
            print(f"{PROG}: {error}", file=sys.stderr)
        raise CLIError(f"{len(e.errors)} problem(s) in {path}") from None


def create_master(args) -> int:
    from buildfarm.master.db.migrate import upgrade_database

    basedir = os.path.abspath(args.basedir)
    taken = [n for n in (CONFIG_FILE, "buildbot.tac") if os.path.exists(os.path.join(basedir, n))]
    if taken and not args.force:
        raise CLIError(f"{basedir} already holds {taken[0]} (use --force to overwrite)")
    os.makedirs(basedir, exist_ok=True)
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            config_text = f.read()
    else:
        sample = resources.files("buildfarm.master").joinpath("sample.cfg").read_text("utf-8")
        admin_password = secrets.token_urlsafe(ADMIN_PASSWORD_BYTES)
        config_text = Template(sample).substitute(
            pb_port=args.pb_port, www_port=args.www_port, db_url=args.db, admin_password=admin_password
        )
    _write(os.path.join(basedir, CONFIG_FILE), config_text, 0o600)
    _write(os.path.join(basedir, "buildbot.tac"), tac_text(basedir, args.relocatable), 0o600)
    config = _load(basedir)
    upgrade_database(config.db_url, basedir)
    print(f"created a master in {basedir}")
    if not args.config:
        print(f"  the user 'admin' may do anything; its password (in master.cfg): {admin_password}")
    print(f"  edit {os.path.join(basedir, CONFIG_FILE)}, then: {PROG} start {args.basedir}")
    return 0


def _write(path: str, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def start(args) -> int:
    basedir = os.path.abspath(args.basedir)
    config = _load(basedir)
    outcome = start_daemon(basedir, READY_PATTERNS, FAILURE_PATTERNS)
    if not outcome.ok:
        print(f"{PROG}: the master did not start: {_message(outcome.line)}", file=sys.stderr)
        print(f"--- last lines of {os.path.join(basedir, 'twistd.log')}:", file=sys.stderr)
        print(log_tail(basedir), end="", file=sys.stderr)
        return 1
    web = f", web at {_url(config.www_port)}" if config.www_port else ""
    print(f"buildmaster is running in {basedir} (pid {outcome.pid}): slaves connect to "
          f"{config.pb_port}{web}")
    return 0


def _message(line: str) -> str:
    """A log line without twistd's timestamp and system prefix."""
    head, sep, rest = line.partition("] ")
    return rest if sep else line


def _url(description: str) -> str:
    port = description.split(":")[1] if ":" in description else description
    return f"http://localhost:{port}/api/v1/"


def stop(args) -> int:
    basedir = os.path.abspath(args.basedir)
    if stop_daemon(basedir):
        print(f"buildmaster stopped in {basedir}")
    else:
        print(f"buildmaster not running in {basedir}")
    return 0


def restart(args) -> int:
    basedir = os.path.abspath(args.basedir)
    try:
        _load(basedir)
    except CLIError as e:
        running = " (the running master keeps running)" if read_pid(basedir) else ""
        raise CLIError(f"{e}; not restarting{running}") from None
    stop(args)
    return start(args)


def reconfig(args) -> int:
    basedir = os.path.abspath(args.basedir)
    pid = read_pid(basedir)
    if pid is None:
        raise CLIError(f"no master is running in {basedir}")
    try:
        _load(basedir)
    except CLIError as e:
        raise CLIError(f"{e}; the running master keeps its configuration") from None
    offset = log_offset(basedir)
    os.kill(pid, signal.SIGHUP)
    outcome = follow_log(basedir, offset, [RECONFIG_DONE_MESSAGE], [RECONFIG_FAILED_MESSAGE],
                         RECONFIG_TIMEOUT_S)
    if not outcome.ok:
        raise CLIError(f"reconfig failed: {_message(outcome.line)}")
    print(f"buildmaster reconfigured: {_message(outcome.line)}")
    return 0


def sendchange(args) -> int:
    secret = args.secret or os.environ.get(SECRET_ENV)
    if not secret:
        raise CLIError(f"give the change hook's secret with --secret or ${SECRET_ENV}")
    properties = {}
    for item in args.property:
        name, sep, value = item.partition(":")
        if not sep or not name:
            raise CLIError(f"--property takes NAME:VALUE, not {item!r}")
        properties[name] = value
    change = {"author": args.author, "comments": args.comments, "files": args.files,
              "repository": args.repository, "project": args.project, "codebase": args.codebase,
              "properties": properties}
    for name in ("branch", "revision", "category"):
        if getattr(args, name) is not None:
            change[name] = getattr(args, name)
    url = args.master.rstrip("/") + "/api/v1/changes"
    request = urllib.request.Request(url, data=json.dumps(change).encode(), method="POST",
                                     headers={"X-Buildfarm-Secret": secret,
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            changeid = json.loads(response.read())["changeid"]
    except urllib.error.HTTPError as e:
        raise CLIError(f"the master refused the change: {_api_error(e)}") from None
    except (urllib.error.URLError, OSError) as e:
        raise CLIError(f"cannot reach the master at {args.master}: {getattr(e, 'reason', e)}") from None
    print(f"change {changeid} sent to {args.master}")
    return 0


def _api_error(error) -> str:
    try:
        return json.loads(error.read())["error"]
    except (ValueError, KeyError):
        return f"HTTP {error.code}"


def checkconfig(args) -> int:
    config = _load(args.path)
    for warning in config.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    for line in config.auth_explanation:
        print(f"{PROG}: auth: {line}")
    print(f"{config.filename} is valid: {len(config.slaves)} slaves, {len(config.builders)} "
          f"builders, {len(config.schedulers)} schedulers")
    return 0


def upgrade_master(args) -> int:
    from buildfarm.master.db.engine import is_in_memory
    from buildfarm.master.db.migrate import upgrade_database

    basedir = os.path.abspath(args.basedir)
    config = _load(basedir)
    if is_in_memory(config.db_url):
        print(f"the database of {basedir} is in memory ({config.db_url}): the master creates its "
              "schema each time it starts, and nothing of it outlives the process")
        return 0
    upgrade_database(config.db_url, basedir)
    print(f"the database of {basedir} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
