"""Command-line helpers shared by ``buildmaster`` and ``buildslave``.

Every CLI error is one line on stderr and a non-zero exit: never a traceback.
"""

import sys
from collections.abc import Callable


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
