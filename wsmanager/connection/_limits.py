"""Per-connection limits: the size of an incoming frame and a token bucket for
incoming messages, together an :class:`Intake` that judges each frame.
Server-specific closing and backlog probes are in :mod:`wsmanager.servers`.

Both are cheap enough to run on every frame: the size check is one
comparison for frames well under the limit; the bucket is two floats and a
clock read. What a server needs to close with a limit's code, or to see a
slow client's backlog, is in :mod:`wsmanager.servers`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from time import time as _wall_time  # not time.time: tests replace the module's clock with a fake

from ._activity import Activity

__all__ = ["Intake", "IntakeVerdict", "TokenBucket", "too_big"]


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

    def take(self, cost: int = 1) -> bool:
        """Spend ``cost`` tokens if there are that many; False means over the limit.

        All or nothing: a refused cost spends no token, so a large cost that
        does not fit does not hold up smaller ones after it. A cost above
        ``burst`` never fits.
        """
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= cost:
            self._tokens -= cost
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


class IntakeVerdict(enum.Enum):
    """What :meth:`Intake.check` decided about one incoming frame."""

    OK = "ok"
    #: Over ``max_message_size``: close with 1009.
    TOO_BIG = "too big"
    #: Over the rate limit: refuse this frame (RPC answers -32002).
    LIMITED = "limited"
    #: Over the rate limit ``strikes`` times in a row: close with 1008.
    STRUCK_OUT = "struck out"


class Intake:
    """The incoming limits of one socket: frame size, then rate, then strikes.

    ``cost_of(frame)`` says how many tokens a frame takes (one by default;
    the RPC layer charges a batch per call); it is asked only for a frame
    within the size limit, and only when there is a rate limit. A frame that
    spends a token resets the strikes; a free one (cost 0) leaves them as they
    are, so free frames slipped between refused ones never save a flood from
    striking out.
    """

    __slots__ = ("_bucket", "_strikes", "activity", "max_message_size", "strikes")

    def __init__(
        self,
        max_message_size: int | None,
        rate_limit: tuple[float, float] | None,
        strikes: int,
        activity: Activity | None = None,
    ) -> None:
        self.max_message_size = max_message_size
        self._bucket = TokenBucket(*rate_limit) if rate_limit else None
        self.strikes = strikes
        self._strikes = 0
        #: The socket's activity: each frame checked is its last activity in.
        self.activity = activity if activity is not None else Activity()

    def check(self, data: str | bytes, cost_of: Callable[[str | bytes], int] | None = None) -> IntakeVerdict:
        self.activity.last = _wall_time()
        if too_big(data, self.max_message_size):
            return IntakeVerdict.TOO_BIG
        cost = 1 if cost_of is None or self._bucket is None else cost_of(data)
        if cost == 0:
            return IntakeVerdict.OK
        if self._bucket is not None and not self._bucket.take(cost):
            self._strikes += 1
            return IntakeVerdict.STRUCK_OUT if self._strikes >= self.strikes else IntakeVerdict.LIMITED
        self._strikes = 0
        return IntakeVerdict.OK
