"""``Periodic`` and ``Nightly``: build at times of the master's clock.

The time of the last build is kept in ``db.state`` (key ``last_build``), so a restarted
master neither repeats a build nor loses one: the next build is due ``periodicBuildTimer``
seconds (Periodic) or at the first cron time (Nightly) after the last build, and a build
that fell due while the master was down runs once, at start-up.  A Periodic that never
built builds at once; a Nightly that never built waits for its first cron time.

With ``onlyIfChanged=True`` the scheduler also watches changes and builds at its time only
if an important change arrived since its last build, as Buildbot 4.3 does:

- a change counts if it passes ``change_filter`` *and* is on ``branch`` (both may be given);
  ``fileIsImportant`` says whether it is important, ``onlyImportant`` drops the others;
- a build covers every change seen since the last build, important or not; a skipped time
  keeps them for the next build;
- the scheduler's first time always builds (a baseline), and so does the first time after
  ``onlyIfChanged`` was turned on (changes seen while it was off were not watched);
- Nightly's ``force_at_minute``, ``force_at_hour``, ... (any of them given) name times that
  build even without an important change.

Without changes, a build is of ``branch`` (when given) at its newest revision.
"""

import datetime

import croniter
from dateutil import tz
from twisted.logger import Logger

from buildfarm.master.changes.change import Change
from buildfarm.master.changes.filter import NotABranch
from buildfarm.master.schedulers.base import is_positive_number
from buildfarm.master.schedulers.changesched import ChangeScheduler

log = Logger()

LAST_BUILD_KEY = "last_build"
LAST_ONLY_IF_CHANGED_KEY = "last_only_if_changed"  # onlyIfChanged at the last due time
CHANGES_KEY = ("timed",)

# Nightly's arguments, in crontab order, and the range each accepts (for messages).
CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("dayOfMonth", "1-31"),
    ("month", "1-12"),
    ("dayOfWeek", "0-6, Monday is 0"),
)
FORCE_AT_NAMES = ("minute", "hour", "day_of_month", "month", "day_of_week")
DAY_OF_WEEK = 4  # its position in CRON_FIELDS


class _Timed(ChangeScheduler):
    """Builds when ``next_build_time`` comes."""

    branch_with_filter = True
    runs_on_one_master = True  # each period fires once across the masters

    def __init__(self, name, builderNames, onlyIfChanged=False, **kwargs):  # noqa: N803
        super().__init__(name, builderNames, **kwargs)
        self.onlyIfChanged = onlyIfChanged
        self._first_build = False

    @property
    def wants_changes(self) -> bool:  # type: ignore[override]
        return bool(self.onlyIfChanged)

    def next_build_time(self, last_build: float | None) -> float:
        raise NotImplementedError

    def forced_at(self, when: float) -> bool:
        """Whether ``when`` is a time that builds even without an important change."""
        return False

    async def started(self) -> None:
        if self.onlyIfChanged:
            await super().started()
        last_build = await self.get_state(LAST_BUILD_KEY)
        self._first_build = last_build is None
        self._schedule(last_build)

    def _schedule(self, last_build: float | None) -> None:
        due = self.next_build_time(last_build)
        self.call_later(due - self.now(), self._due)

    async def change_arrived(self, change: Change, important: bool) -> None:
        await self.remember(CHANGES_KEY, change, important)

    async def _due(self) -> None:
        now = self.now()
        await self.set_state(LAST_BUILD_KEY, now)
        last_only_if_changed = await self.get_state(LAST_ONLY_IF_CHANGED_KEY, True)
        if last_only_if_changed and self.onlyIfChanged and not self.has_important(CHANGES_KEY) \
                and not self._first_build and not self.forced_at(now):
            log.info("scheduler {name}: no important change since the last build; not building",
                     name=self.name)
        else:
            changes, _ = await self.take_pending(CHANGES_KEY) if self.onlyIfChanged else ([], False)
            await self.add_buildset_for_changes(changes, self.branch_properties())
        if last_only_if_changed != bool(self.onlyIfChanged):
            await self.set_state(LAST_ONLY_IF_CHANGED_KEY, bool(self.onlyIfChanged))
        self._first_build = False
        self._schedule(now)

    def branch_properties(self) -> dict:
        return {} if self.branch is NotABranch else {"branch": self.branch}


class Periodic(_Timed):
    """Builds every ``periodicBuildTimer`` seconds."""

    def __init__(self, name, builderNames, periodicBuildTimer=None, **kwargs):  # noqa: N803
        super().__init__(name, builderNames, **kwargs)
        self.periodicBuildTimer = periodicBuildTimer

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        timer = self.periodicBuildTimer
        if not is_positive_number(timer):
            problems.append(f"Periodic {self.name!r}: periodicBuildTimer must be a positive number "
                            f"of seconds, not {timer!r}")
        return problems

    def next_build_time(self, last_build: float | None) -> float:
        if last_build is None:
            return self.now()
        return last_build + self.periodicBuildTimer


class Nightly(_Timed):
    """Builds at the times a crontab line names (in the master's local time zone).

    Each field is ``'*'``, an integer, a list of integers or a crontab string (``'*/15'``,
    ``'1-5'``).  ``dayOfWeek`` counts from Monday = 0, as Python and Buildbot do.
    """

    def __init__(self, name, builderNames, minute=0, hour="*", dayOfMonth="*",  # noqa: N803
                 month="*", dayOfWeek="*", force_at_minute=None, force_at_hour=None,  # noqa: N803
                 force_at_day_of_month=None, force_at_month=None, force_at_day_of_week=None,
                 **kwargs):
        super().__init__(name, builderNames, **kwargs)
        self.minute = minute
        self.hour = hour
        self.dayOfMonth = dayOfMonth
        self.month = month
        self.dayOfWeek = dayOfWeek
        # Buildbot's force_at_*: given any, the others default like the schedule's fields.
        forced = (force_at_minute, force_at_hour, force_at_day_of_month, force_at_month,
                  force_at_day_of_week)
        self.force_at = None if all(v is None for v in forced) else tuple(
            default if value is None else value
            for value, default in zip(forced, (0, "*", "*", "*", "*"), strict=True))

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        given = [getattr(self, field) for field, _ in CRON_FIELDS]
        names = [field for field, _ in CRON_FIELDS]
        if self.force_at is not None:
            given += list(self.force_at)
            names += [f"force_at_{name}" for name in FORCE_AT_NAMES]
        for index, (field, value) in enumerate(zip(names, given, strict=True)):
            position = index % len(CRON_FIELDS)
            accepted = CRON_FIELDS[position][1]
            try:
                text = cron_field(value, position == DAY_OF_WEEK)
            except ValueError:
                text = None
            line = ["*"] * len(CRON_FIELDS)
            if text is not None:
                line[position] = text
            if text is None or not croniter.croniter.is_valid(" ".join(line)):
                problems.append(f"Nightly {self.name!r}: bad {field}={value!r} (accepted: {accepted}, "
                                "'*', a list, or a crontab field like '*/15')")
        return problems

    def cron_line(self) -> str:
        return " ".join(cron_field(getattr(self, field), field == "dayOfWeek")
                        for field, _ in CRON_FIELDS)

    def next_build_time(self, last_build: float | None) -> float:
        start = datetime.datetime.fromtimestamp(last_build or self.now(), tz.tzlocal())
        return croniter.croniter(self.cron_line(), start).get_next(datetime.datetime).timestamp()

    def forced_at(self, when: float) -> bool:
        if self.force_at is None:
            return False
        line = " ".join(cron_field(value, position == DAY_OF_WEEK)
                        for position, value in enumerate(self.force_at))
        return croniter.croniter.match(line, datetime.datetime.fromtimestamp(when, tz.tzlocal()))


def cron_field(value, day_of_week: bool = False) -> str:
    """A Nightly argument as a crontab field (Monday = 0 becomes cron's Sunday = 0 numbering)."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return str((value + 1) % 7 if day_of_week else value)
    if isinstance(value, str):
        if not day_of_week:
            return value
        return ",".join(str((int(p) + 1) % 7) if p.strip().isdigit() else p for p in value.split(","))
    if isinstance(value, list | tuple) and value and all(isinstance(v, int) and not isinstance(v, bool)
                                                        for v in value):
        return ",".join(cron_field(v, day_of_week) for v in value)
    raise ValueError(value)
