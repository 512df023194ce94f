"""AMQP topic patterns: a routing key is dot-separated words; in a binding pattern ``*``
matches exactly one word and ``#`` zero or more words (RabbitMQ's topic exchange)."""

from functools import lru_cache

WORD = "*"
WORDS = "#"


def matches(pattern: str, routing_key: str) -> bool:
    """Whether ``routing_key`` is selected by the binding ``pattern``."""
    return _match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


@lru_cache(maxsize=4096)
def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == WORDS:
        # ``#`` takes 0, 1, ... words: try each split
        return any(_match(rest, words[taken:]) for taken in range(len(words) + 1))
    if not words:
        return False
    return (head == WORD or head == words[0]) and _match(rest, words[1:])
