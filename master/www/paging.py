"""Query parameters of the JSON API's list endpoints: paging (``limit``, ``offset``), filters,
and the ``meta`` block every page carries.

Every parser takes the request's arguments as ``{name: last value}`` (text) and raises
``BadParameter`` naming the field when a value is unusable; the API answers that as a 400.
"""

from dataclasses import dataclass
from urllib.parse import urlencode

from buildfarm.common.results import RESULT_NAMES
from buildfarm.master.http.limits import MAX_URL_INT
from buildfarm.master.http.routing import parse_url_int

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
TRUE_WORDS = frozenset({"1", "true", "yes"})
FALSE_WORDS = frozenset({"0", "false", "no"})


class BadParameter(ValueError):
    """A query parameter's value is unusable: ``field`` names it, ``message`` says why."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Page:
    """One page of a list: at most ``limit`` items from ``offset`` (0 is the first item)."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def slice(self, items: list) -> list:
        """This page of a list held in memory."""
        return items[self.offset : self.offset + self.limit]

    def meta(self, total: int, path: str, args: dict[str, str]) -> dict:
        """The ``meta`` block of this page of ``total`` items: ``next`` is the URL (path and
        query, same filters) of the following page, or None on the last one."""
        following = self.offset + self.limit
        next_url = None
        if following < total:
            query = {**args, "limit": str(self.limit), "offset": str(following)}
            next_url = f"{path}?{urlencode(query)}"
        return {"total": total, "limit": self.limit, "offset": self.offset, "next": next_url}


def parse_int(args: dict[str, str], name: str, default: int | None, minimum: int = 0,
              maximum: int = MAX_URL_INT) -> int | None:
    """The integer parameter ``name`` (``default`` when absent), within the bounds (at most
    ``MAX_URL_INT``: a database's 64-bit integers never overflow)."""
    value = args.get(name)
    if value is None:
        return default
    number = parse_url_int(value, minimum, maximum)
    if number is None:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise BadParameter(name, f"must be an integer from {minimum} to {maximum}, not {shown!r}")
    return number


def parse_page(args: dict[str, str]) -> Page:
    """``limit`` (default 50, 1 to 1000) and ``offset`` (default 0)."""
    return Page(parse_int(args, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT), parse_int(args, "offset", 0))


def parse_bool(args: dict[str, str], name: str) -> bool | None:
    """A yes/no parameter: 1/true/yes or 0/false/no (None when absent)."""
    value = args.get(name)
    if value is None:
        return None
    if value.strip().lower() in TRUE_WORDS:
        return True
    if value.strip().lower() in FALSE_WORDS:
        return False
    raise BadParameter(name, f"must be 1 or 0 (true or false), not {value!r}")


def parse_result(args: dict[str, str], name: str = "result") -> int | None:
    """A build result, by name (``success``, ``failure``...) or by its number (0-6)."""
    value = args.get(name)
    if value is None:
        return None
    text = value.strip().lower()
    if text in RESULT_NAMES:
        return RESULT_NAMES.index(text)
    if text.isascii() and text.isdigit() and int(text) < len(RESULT_NAMES):
        return int(text)
    raise BadParameter(name, f"must be one of {', '.join(RESULT_NAMES)} or 0-{len(RESULT_NAMES) - 1}, "
                             f"not {value!r}")


def parse_choice(args: dict[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    """One of ``choices`` (None when absent)."""
    value = args.get(name)
    if value is None:
        return None
    if value not in choices:
        raise BadParameter(name, f"must be one of {', '.join(choices)}, not {value!r}")
    return value
