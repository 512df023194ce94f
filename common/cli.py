"""Command-line helpers shared by ``buildmaster`` and ``buildslave`` (``run_command``) and by
the HTTP clients' command lines, ``isolateserver`` and ``swarming`` (``run_client``: argparse
errors as one line, one coroutine on the reactor).

Every CLI error is one line on stderr and a non-zero exit: never a traceback.
"""

import argparse
import sys
from collections.abc import Awaitable, Callable, Sequence

from twisted.internet import defer, task


class CLIError(Exception):
    """An error to show the user as one line, ending the command with exit status 1."""


def run_command(prog: str, command: Callable[[], int]) -> int:
    """Run ``command``, turning expected failures into one-line messages and exit status 1."""
    try:
        return command()
    except CLIError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        print(f"{prog}: {e.strerror or e}{where}", file=sys.stderr)
        return 1


class UsageError(Exception):
    """Bad flags: one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) raised as ``UsageError``;
    a subcommand's error says where its help is (``PROG help SUBCOMMAND``)."""

    def error(self, message: str):
        words = self.prog.split()
        raise UsageError(f"{message} (see '{words[0]} help {words[-1]}')" if len(words) > 1 else message)


def parse_command_line(parser: argparse.ArgumentParser, argv: Sequence[str], dest: str, command_list: str,
                       commands: Sequence[str]) -> tuple[argparse.Namespace | None, int]:
    """``argv`` parsed by ``parser`` (its subcommand in ``args.<dest>``, its ``help`` subcommand
    taking a ``topic``), or ``(None, exit status)`` once help was printed: the command list for no
    command or ``help`` (to stderr and status 2 when no command was given), a subcommand's flags
    for ``help COMMAND`` or ``COMMAND --help``."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a subcommand's --help printed its flags
        return None, int(e.code or 0)
    command = getattr(args, dest)
    if command is None or (command == "help" and not args.topic):
        asked = args.help or command == "help"
        print(command_list, file=sys.stdout if asked else sys.stderr)
        return None, 0 if asked else 2
    if command == "help":
        sub = parser.subcommands.choices.get(args.topic)  # type: ignore[attr-defined]
        if sub is None:
            raise UsageError(f"no command {args.topic!r}; the commands are {', '.join(commands)}")
        print(sub.format_help(), end="")
        return None, 0
    return args, 0


def one_line(error: BaseException, expected: tuple[type[BaseException], ...]) -> tuple[str, int]:
    """The message and exit status of a client command's failure: bad flags 2; an ``expected``
    failure (the server's answer, a full cache, ...) or an OSError 1 with its message; anything
    else 1, named as an internal error (never a traceback)."""
    if isinstance(error, UsageError):
        return str(error), 2
    if isinstance(error, expected):
        return str(error), 1
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror or error}{where}", 1
    return f"internal error: {type(error).__name__}: {error}", 1


def run_client(prog: str, argv: Sequence[str],
               parse: Callable[[Sequence[str]], tuple[argparse.Namespace | None, int]],
               run: Callable[[object, argparse.Namespace], Awaitable[int | None]],
               expected: tuple[type[BaseException], ...]) -> int:
    """Parse ``argv`` (``(None, status)``: answered already, e.g. help), then run
    ``run(reactor, args)`` on the reactor; its exit status (what ``run`` returns, 0 for None)."""
    try:
        args, status = parse(argv)
    except UsageError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    if args is None:
        return status
    outcome = [0]

    async def body(reactor) -> None:
        try:
            outcome[0] = await run(reactor, args) or 0
        except Exception as e:  # noqa: BLE001 - every failure is one line, never a traceback
            message, outcome[0] = one_line(e, expected)
            print(f"{prog}: {message}", file=sys.stderr)

    try:
        task.react(lambda reactor: defer.ensureDeferred(body(reactor)))
    except SystemExit:
        pass
    return outcome[0]


def client_main(prog: str, run: Callable[[Sequence[str]], int]) -> None:
    """A client's console script: ``run(sys.argv[1:])``'s status; Ctrl-C is one line, 130."""
    try:
        sys.exit(run(sys.argv[1:]))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
