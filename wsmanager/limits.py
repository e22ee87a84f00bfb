"""Per-connection limits: the size of an incoming frame and a token bucket for
incoming messages.

Both are cheap enough to run on every frame: the size check is one
comparison for frames well under the limit; the bucket is two floats and a
clock read. What a server needs to close with a limit's code, or to see a
slow client's backlog, is in :mod:`wsmanager.servers`.
"""

from __future__ import annotations

import time

__all__ = ["TokenBucket", "too_big"]


class TokenBucket:
    """Allows ``rate`` messages per second on average and bursts of ``burst``.

    Starts full. Not thread-safe (one bucket per socket, used on its loop).
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = time.monotonic()

    def take(self) -> bool:
        """Spend one token if there is one; False means over the limit."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def too_big(data: str | bytes, limit: int | None) -> bool:
    """Whether a frame is over ``limit`` bytes (text measured as UTF-8); None: no limit.

    Text is encoded only when ``len * 4`` (a bound of its UTF-8 size) is over
    the limit, so frames well under it cost one comparison.
    """
    if limit is None:
        return False
    if isinstance(data, bytes):
        return len(data) > limit
    return len(data) * 4 > limit and len(data.encode("utf-8", "surrogatepass")) > limit
