"""``Backoff``: the delays between attempts to reach the broker, shared by the outbox publisher
and the consumer: ``MIN_BACKOFF_S`` after the first failure, doubling up to ``MAX_BACKOFF_S``,
and back to the shortest once an attempt succeeded; ``BrokerLink``: the retry timer and the
channel each of them holds."""

from twisted.logger import Logger

log = Logger()

MIN_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


class Backoff:
    """The delay before the next attempt (``next``) and its reset on success (``reset``)."""

    def __init__(self, min_s: float = MIN_BACKOFF_S, max_s: float = MAX_BACKOFF_S) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self.delay_s = min_s  # the delay ``next`` returns

    def next(self) -> float:
        """The delay to wait now; the one after it doubles (up to ``max_s``)."""
        delay, self.delay_s = self.delay_s, min(self.delay_s * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self.delay_s = self.min_s


def error_text(error: Exception) -> str:
    """An error as the logs show why an attempt failed: its type and message."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class BrokerLink:
    """The retry timer (``_timer``, an ``IDelayedCall``) and the broker channel (``_channel``)
    of a service that keeps a channel to the broker: the outbox publisher and the consumer."""

    _timer = None
    _channel = None

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _drop_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            try:
                channel.close()
            except Exception:
                log.failure("closing the broker channel failed")
