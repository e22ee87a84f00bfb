"""``LogThrottle``: one line per kind per interval, the rest counted (clock injected, no waiting)."""

from __future__ import annotations

import logging

import pytest

from wsmanager.observe._logs import LogThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_first_line_of_a_kind_is_written_and_repeats_are_counted() -> None:
    """admit: 0 the first time, None for repeats inside the interval."""
    clock = Clock()
    throttle = LogThrottle(interval=60, clock=clock)
    assert throttle.admit("bad_input") == 0
    assert [throttle.admit("bad_input") for _ in range(5)] == [None] * 5
    clock.now += 59.9
    assert throttle.admit("bad_input") is None


def test_after_the_interval_the_next_line_says_how_many_were_skipped() -> None:
    """The first line after the interval carries the count, which then starts again."""
    clock = Clock()
    throttle = LogThrottle(interval=60, clock=clock)
    throttle.admit("x")
    for _ in range(7):
        throttle.admit("x")
    clock.now += 60
    assert throttle.admit("x") == 7
    clock.now += 60
    assert throttle.admit("x") == 0


def test_kinds_are_throttled_apart() -> None:
    """A line of one kind does not hold back a line of another."""
    throttle = LogThrottle(interval=60, clock=Clock())
    assert throttle.admit("a") == 0
    assert throttle.admit("b") == 0
    assert throttle.admit("a") is None


def test_flush_gives_the_unreported_counts_once() -> None:
    """flush returns what was skipped and not yet reported, then forgets it."""
    throttle = LogThrottle(interval=60, clock=Clock())
    throttle.admit("a")
    throttle.admit("a")
    throttle.admit("a")
    throttle.admit("b")
    assert throttle.flush() == {"a": 2}
    assert throttle.flush() == {}


def test_log_writes_one_record_per_interval_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    """log(): a thousand calls in one interval write one record (traceback included) and count the rest."""
    clock = Clock()
    throttle = LogThrottle(interval=10, clock=clock)
    logger = logging.getLogger("tests.logs")
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        error = exc
    with caplog.at_level(logging.INFO, logger="tests.logs"):
        written = [
            throttle.log(logger, "crash", logging.ERROR, "socket %s failed", "s1", exc_info=error)
            for _ in range(1000)
        ]
        clock.now += 10
        throttle.log(logger, "crash", logging.ERROR, "socket %s failed", "s1")
    assert written.count(True) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "socket s1 failed",
        "socket s1 failed (and 999 more like it since the last such line)",
    ]
    assert caplog.records[0].exc_info is not None and caplog.records[1].exc_info is None


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        LogThrottle(interval=-1)
