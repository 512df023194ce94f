"""``MQSettings``: ``c['mq']`` as the event bus and its publisher read it (master/config.py
checks it with ``validate_mq_config``).

``{'type': 'simple'}`` (the default) is the in-process bus of one master; ``{'type': 'amqp',
'url': 'amqp://user:password@host:5672/vhost', 'exchange_prefix': 'exchange/'}`` also sends
every event to RabbitMQ through the ``mq_outbox`` table.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

import pika

from buildfarm.master.mq.exchanges import DEFAULT_EXCHANGE_PREFIX

SIMPLE = "simple"
AMQP = "amqp"
TYPES = (SIMPLE, AMQP)
MQ_KEYS = frozenset({"type", "url", "exchange_prefix"})
URL_SCHEMES = ("amqp", "amqps")
MAX_PREFIX_LENGTH = 100


@dataclass(frozen=True)
class MQSettings:
    """The event bus: in-process only, or also AMQP (``url``) with its exchanges' prefix."""

    type: str = SIMPLE
    url: str | None = None
    exchange_prefix: str = DEFAULT_EXCHANGE_PREFIX

    @property
    def amqp(self) -> bool:
        return self.type == AMQP

    def safe_url(self) -> str | None:
        """The URL without its password, for the logs."""
        return None if self.url is None else _without_password(self.url)


def validate_mq_config(raw: dict) -> tuple[MQSettings, list[tuple[str, str]]]:
    """The ``MQSettings`` of ``raw['mq']`` and the ``(key, message)`` problems found."""
    mq = raw.get("mq", {})
    if mq is None:
        mq = {}
    if not isinstance(mq, dict):
        return MQSettings(), [("mq", "c['mq'] must be a dict like {'type': 'amqp', 'url': 'amqp://...'}")]
    problems = [("mq", f"unknown c['mq'] key {key!r}") for key in sorted(set(mq) - MQ_KEYS, key=str)]
    kind = mq.get("type", SIMPLE)
    if kind not in TYPES:
        problems.append(("mq", f"c['mq']['type'] must be one of {', '.join(TYPES)}, not {kind!r}"))
        kind = SIMPLE
    url = mq.get("url")
    if kind == AMQP:
        problem = _url_problem(url)
        if problem:
            problems.append(("mq", problem))
    elif url is not None:
        problems.append(("mq", "c['mq']['url'] is only read with 'type': 'amqp'"))
    prefix = mq.get("exchange_prefix", DEFAULT_EXCHANGE_PREFIX)
    if not isinstance(prefix, str) or len(prefix) > MAX_PREFIX_LENGTH or any(c in prefix for c in " #*"):
        problems.append(("mq", f"c['mq']['exchange_prefix'] must be a string of at most {MAX_PREFIX_LENGTH} "
                               f"characters without spaces, '#' or '*', like 'exchange/', not {prefix!r}"))
        prefix = DEFAULT_EXCHANGE_PREFIX
    if problems:
        return MQSettings(), problems
    return MQSettings(kind, url, prefix), []


def _url_problem(url) -> str | None:
    if not isinstance(url, str) or not url:
        return "c['mq']['url'] is required with 'type': 'amqp', like 'amqp://user:password@host:5672/'"
    parts = urlsplit(url)
    if parts.scheme not in URL_SCHEMES or not parts.hostname:
        return (f"c['mq']['url'] must be an amqp:// or amqps:// URL with a host, "
                f"not {_without_password(url)!r}")
    try:
        pika.URLParameters(url)
    except Exception as e:  # pika says what is wrong with the URL's parts or options
        return f"bad c['mq']['url'] {_without_password(url)!r}: {e}"
    return None


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
