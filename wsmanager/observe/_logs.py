"""Log lines that a client cannot multiply: at most one per kind per interval.

A :class:`LogThrottle` belongs to one socket. Each kind of line (``"bad_input"``,
``"method_error"``...) is written the first time it happens, then at most once
per ``interval`` seconds; the occurrences in between are counted, and the next
line written for that kind says how many there were. :meth:`LogThrottle.flush`
gives the counts not reported yet (the socket logs them when it closes), so
nothing goes unmentioned, only unrepeated.

Guarantees: per throttle and kind, at most one line per interval (plus one
summary at flush), whatever the rate of events; a line written carries what
the caller gave it (a traceback too: one per interval at most). The clock is
injectable (``clock=``), so the behaviour is testable without waiting.
Non-guarantees: not thread-safe (one throttle per socket, used on its event
loop); lines of different sockets are not throttled together, so N sockets
can still write N lines per interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_INTERVAL", "LogThrottle"]

#: Seconds between two lines of one kind from one socket.
DEFAULT_INTERVAL = 60.0


class LogThrottle:
    """At most one log line per kind per ``interval`` seconds; see the module docstring."""

    __slots__ = ("_clock", "_last", "_skipped", "interval")

    def __init__(
        self, interval: float = DEFAULT_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if interval < 0:
            raise ValueError("a log interval cannot be negative")
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def admit(self, kind: str) -> int | None:
        """None: do not write this line (it is counted). Else write it; the int is
        how many lines of ``kind`` were skipped since the last one written."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._skipped.pop(kind, 0)

    def log(
        self, logger: logging.Logger, kind: str, level: int, msg: str, *args: Any, exc_info: Any = None
    ) -> bool:
        """``logger.log(level, msg, *args)`` if :meth:`admit` lets it through; whether it did.

        A line written after skipped ones ends with how many were skipped.
        """
        skipped = self.admit(kind)
        if skipped is None:
            return False
        if skipped:
            msg = f"{msg} (and %d more like it since the last such line)"
            args = (*args, skipped)
        logger.log(level, msg, *args, exc_info=exc_info)
        return True

    def flush(self) -> dict[str, int]:
        """The lines skipped and not reported yet, by kind; forgets them."""
        skipped, self._skipped = self._skipped, {}
        return skipped
