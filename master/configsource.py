"""Where in master.cfg a configuration object was made, for error messages with a line.

``master.cfg`` is executed with ``__name__`` set to ``CONFIG_MODULE_NAME``, so a config
object can find the line that created it by walking up the stack to the first frame
running in that namespace.  No global state is needed.
"""

import sys

CONFIG_MODULE_NAME = "__buildfarm_config__"


def caller_config_line() -> int | None:
    """The master.cfg line currently executing, or None outside a config load."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == CONFIG_MODULE_NAME:
            return frame.f_lineno
        frame = frame.f_back
    return None


class ConfigObject:
    """Base for objects built in master.cfg: remembers the line that built it."""

    config_line: int | None = None

    def _remember_config_line(self) -> None:
        self.config_line = caller_config_line()
