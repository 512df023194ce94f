"""Shell steps that count warnings: ``WarningCountingShellCommand`` and its kin ``Compile``
and ``Test``; and ``Configure``.  As Buildbot's ``buildbot.steps.shell``.

Each stdout line that matches ``warningPattern`` is a warning, unless a suppression matches
it: ``suppressionList`` ([(file regexp, warning regexp, first line, last line)], None for
"any") and ``suppressionFile``, a file on the slave (relative to the workdir) with one
``file-regexp : warning-regexp [: first[-last]]`` per line.  Warnings go to a log
``warnings (N)``, add to the build's ``warnings-count`` property and make the step WARNINGS,
or FAILURE past ``maxWarnCount``.
"""

import re

from buildfarm.common.results import FAILURE, WARNINGS
from buildfarm.master.process.logobserver import LineConsumerLogObserver
from buildfarm.master.process.results import worst_status
from buildfarm.master.process.stepapi import BuildStepFailed, StepCommand, StringWriter
from buildfarm.master.process.steps.shell import ShellCommand
from buildfarm.master.process.steps.transfer import version_at_least

SUPPRESSION_FILE_MAX_BYTES = 1024 * 1024
SUPPRESSION_LINE = re.compile(r"^\s*(.+?)\s*:\s*(.+?)\s*(?:[:]\s*([0-9]+)(?:-([0-9]+))?\s*)?$")
COMMENT_OR_EMPTY = re.compile(r"^\s*(#.*)?$")


def parse_suppressions(text: str) -> list[tuple]:
    """The suppressions of a suppression file's text."""
    found = []
    for line in text.split("\n"):
        if COMMENT_OR_EMPTY.match(line):
            continue
        match = SUPPRESSION_LINE.match(line)
        if match:
            file, warning, start, end = match.groups()
            start = int(start) if start is not None else None
            end = int(end) if end is not None else start
            found.append((file, warning, start, end))
    return found


class WarningCountingShellCommand(ShellCommand):
    """A shell command whose output's warnings are counted (see the module's docstring)."""

    default_name = "shell"
    warningPattern = "(?i).*warning[: ].*"  # noqa: N815 - Buildbot's names
    directoryEnterPattern = "make.*: Entering directory [\u2019\"`'](.*)[\u2019'`\"]"  # noqa: N815
    directoryLeavePattern = "make.*: Leaving directory"  # noqa: N815
    suppressionFile = None  # noqa: N815
    renderables = ShellCommand.renderables + ("suppressionFile",)

    def __init__(self, warningPattern=None, warningExtractor=None, maxWarnCount=None,  # noqa: N803
                 directoryEnterPattern=None, directoryLeavePattern=None, suppressionFile=None,  # noqa: N803
                 suppressionList=None, **kwargs):  # noqa: N803
        if warningPattern is not None:
            self.warningPattern = warningPattern
        if directoryEnterPattern:
            self.directoryEnterPattern = directoryEnterPattern
        if directoryLeavePattern:
            self.directoryLeavePattern = directoryLeavePattern
        if suppressionFile:
            self.suppressionFile = suppressionFile
        self.suppressionList = suppressionList
        self.maxWarnCount = maxWarnCount
        self.warningExtractor = warningExtractor or WarningCountingShellCommand.warnExtractWholeLine
        super().__init__(**kwargs)

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        count = self.maxWarnCount
        if count is not None and (not isinstance(count, int) or count < 0):
            problems.append(f"{type(self).__name__} maxWarnCount must be a whole number")
        try:
            if isinstance(self.warningPattern, str):
                re.compile(self.warningPattern)
        except re.error as e:
            problems.append(f"{type(self).__name__} warningPattern is not a regular expression: {e}")
        return problems

    @staticmethod
    def warnExtractWholeLine(step, line: str, match) -> tuple:  # noqa: N802
        return (None, None, line)

    @staticmethod
    def warnExtractFromRegexpGroups(step, line: str, match) -> tuple:  # noqa: N802
        """``(file, line number, text)`` from the three groups of ``warningPattern``."""
        file, line_number, text = match.groups()
        return (file, int(line_number) if line_number else None, text)

    def addSuppression(self, suppressions) -> None:  # noqa: N802
        for file, warning, start, end in suppressions:
            self.suppressions.append((re.compile(file) if file is not None else None,
                                      re.compile(warning) if warning is not None else None, start, end))

    def warningLogConsumer(self):  # noqa: N802
        """A generator fed ``(stream, line)``: counts the warnings of stdout."""
        pattern = self.warningPattern
        pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        enter = re.compile(self.directoryEnterPattern) if self.directoryEnterPattern else None
        leave = re.compile(self.directoryLeavePattern) if self.directoryLeavePattern else None
        while True:
            stream, line = yield
            if stream != "o":
                continue
            if enter is not None and (match := enter.search(line)):
                self.directoryStack.append(match.group(1))
                continue
            if leave is not None and self.directoryStack and leave.search(line):
                self.directoryStack.pop()
                continue
            match = pattern.match(line)
            if match and not self._suppressed(line, match):
                self.loggedWarnings.append(line)
                self.warnCount += 1

    def _suppressed(self, line: str, match) -> bool:
        if not self.suppressions:
            return False
        file, line_number, text = self.warningExtractor(self, line, match)
        if file and self.directoryStack:
            file = "/".join(self.directoryStack) + "/" + file
        for file_re, warning_re, start, end in self.suppressions:
            if file is not None and file_re is not None and not file_re.match(file):
                continue
            if warning_re is not None and not warning_re.search(text):
                continue
            if start is not None and end is not None and not (
                    line_number is not None and start <= line_number <= end):
                continue
            return True
        return False

    async def suppression_file_text(self) -> str:
        """The suppression file's text, read from the slave (``uploadFile``)."""
        writer = StringWriter(SUPPRESSION_FILE_MAX_BYTES)
        modern = version_at_least(self._bound().command_version("uploadFile"), "3.0")
        args = {"workdir": self.workdir or "build", "writer": writer, "keepstamp": False,
                "maxsize": SUPPRESSION_FILE_MAX_BYTES, "blocksize": 32 * 1024,
                ("workersrc" if modern else "slavesrc"): self.suppressionFile}
        cmd = await self.runCommand(StepCommand("uploadFile", args, stdioLogName=None))
        if cmd.rc != 0:
            why = f"could not read the suppression file {self.suppressionFile!r} from the slave\n"
            await self.addCompleteLog("err.text", why)
            raise BuildStepFailed(self.suppressionFile)
        return writer.text()

    async def run(self):
        self.warnCount = 0
        self.loggedWarnings: list[str] = []
        self.directoryStack: list[str] = []
        self.suppressions: list[tuple] = []
        self.addLogObserver("stdio", LineConsumerLogObserver(self.warningLogConsumer))
        if self.suppressionList:
            self.addSuppression(self.suppressionList)
        if self.suppressionFile:
            self.addSuppression(parse_suppressions(await self.suppression_file_text()))
        cmd = await self.makeRemoteShellCommand()
        await self.runCommand(cmd)
        await self.getLog("stdio").finish()
        if self.warnCount:
            await self.addCompleteLog(f"warnings ({self.warnCount})", "\n".join(self.loggedWarnings) + "\n")
        self.setProperty("warnings-count", self.getProperty("warnings-count", 0) + self.warnCount,
                         "WarningCountingShellCommand")
        return self.evaluateCommand(cmd)

    def evaluateCommand(self, cmd) -> int:  # noqa: N802
        result = cmd.results()
        if self.maxWarnCount is not None and self.warnCount > self.maxWarnCount:
            return worst_status(result, FAILURE)
        if self.warnCount:
            return worst_status(result, WARNINGS)
        return result


class Configure(ShellCommand):
    """``./configure``, halting the build if it fails."""

    name = "configure"
    haltOnFailure = True
    flunkOnFailure = True
    description = "configuring"
    descriptionDone = "configure"
    command = ["./configure"]


class Compile(WarningCountingShellCommand):
    """``make all``, counting warnings, halting the build if it fails."""

    name = "compile"
    haltOnFailure = True
    flunkOnFailure = True
    description = "compiling"
    descriptionDone = "compile"
    command = ["make", "all"]


class Test(WarningCountingShellCommand):
    """``make test``, counting warnings."""

    name = "test"
    warnOnFailure = True
    description = "testing"
    descriptionDone = "test"
    command = ["make", "test"]
