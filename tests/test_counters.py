"""``wsmanager.observe._counters``: one namespace of counters, each documented and each counted somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from wsmanager.observe import Count
from wsmanager.observe import _counters as counters

ROOT = Path(__file__).resolve().parent.parent


def test_docs_counter_table_lists_exactly_the_counters() -> None:
    """docs/protocol.md's counter table names every ``Count`` member, and nothing else."""
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", (ROOT / "docs" / "protocol.md").read_text(), re.M))
    assert documented == {str(member) for member in Count}


def test_every_counter_is_counted_somewhere_in_the_library() -> None:
    """Each ``Count`` member is bumped by some module (no dead counters)."""
    used: set[str] = set()
    for source in (ROOT / "wsmanager").rglob("*.py"):
        if source.name != "counters.py":
            used |= set(re.findall(r"Count\.([A-Z_]+)", source.read_text()))
    assert used == {member.name for member in Count}


def test_bump_adds_and_stats_shows_only_what_is_not_zero() -> None:
    counters.bump(Count.DELIVERED, 3)
    counters.bump(Count.DELIVERED)
    counters.bump(Count.FORWARDED, 0)
    assert counters.stats() == {"delivered": 4}


def test_stats_is_a_snapshot_that_later_bumps_do_not_change() -> None:
    counters.bump(Count.RATE_LIMITED)
    snapshot = counters.stats()
    counters.bump(Count.RATE_LIMITED)
    assert snapshot == {"rate_limited": 1}
    assert counters.stats() == {"rate_limited": 2}


def test_reset_sets_every_counter_back_to_zero() -> None:
    counters.bump(Count.RESTORED, 2)
    counters.reset()
    assert counters.stats() == {}
