"""The process's counters: one namespace for every frame, call or handshake
that was delivered, forwarded, dropped or refused.

Each counter is a :class:`Count` member; code that counts writes
``counters.bump(Count.DROPPED_CLOSED)``, never a string literal, so the set
of counters is the enum and ``docs/protocol.md#counters`` documents each
member (a test keeps the two equal).

Guarantees: counts only grow between two :func:`reset` calls; they are per
process (the node's heartbeat publishes them to a shared registry, see
:mod:`wsmanager.node._heartbeat`). Non-guarantees: they are not persisted and a
restart starts them at zero; reading them is a snapshot, not a transaction.
"""

from __future__ import annotations

import enum
from collections import Counter

from .. import _state

__all__ = ["EVENTS", "Count", "bump", "reset", "stats"]


class Count(enum.StrEnum):
    """Every counter the library keeps (values are the names shown in stats)."""

    DELIVERED = "delivered"
    FORWARDED = "forwarded"
    DROPPED_CLOSED = "dropped_closed"
    DROPPED_UNKNOWN = "dropped_unknown"
    DROPPED_OVERFLOW = "dropped_overflow"
    DROPPED_SLOW_CLIENT = "dropped_slow_client"
    DROPPED_WRITE_FAILED = "dropped_write_failed"
    DROPPED_CHANNEL_FULL = "dropped_channel_full"
    DROPPED_LAYER_ERROR = "dropped_layer_error"
    DROPPED_NO_LAYER = "dropped_no_layer"
    DROPPED_NO_RECEIVER = "dropped_no_receiver"
    RATE_LIMITED = "rate_limited"
    REFUSED_TOO_BIG = "refused_too_big"
    DROPPED_INCOMING = "dropped_incoming"
    REFUSED_HANDSHAKE = "refused_handshake"
    CALLS_REFUSED_PERMISSION = "calls_refused_permission"
    CALLS_REFUSED_BUSY = "calls_refused_busy"
    RESULTS_TOO_LARGE = "results_too_large"
    RESTORED = "restored"
    PARKED = "parked"
    KEPT_FOR_PARKED = "kept_for_parked"
    DROPPED_PARKED = "dropped_parked"
    RESUMED = "resumed"
    RESUME_REFUSED = "resume_refused"
    RESUME_EXPIRED = "resume_expired"
    RESUME_OVERFLOWED = "resume_overflowed"
    RESUME_LOST = "resume_lost"
    PARKED_EXPIRED = "parked_expired"
    PARKED_RELEASED = "parked_released"
    RESUME_THROTTLED = "resume_throttled"
    JOURNAL_READ = "journal_read"
    JOURNAL_READ_BYTES = "journal_read_bytes"
    DROPPED_SUBSCRIBE_FAILED = "dropped_subscribe_failed"
    PUBLISH_FAILED = "publish_failed"
    STREAMS_REFUSED = "streams_refused"
    STREAMS_CANCELLED = "streams_cancelled"
    STREAMS_DROPPED = "streams_dropped"
    UPLOAD_ITEMS_REFUSED = "upload_items_refused"


#: The counters of things that happened, not of drops or refusals (metrics'
#: ``wsmanager_dropped_total`` has a reason for every other counter).
EVENTS = frozenset(
    {
        Count.DELIVERED,
        Count.FORWARDED,
        Count.RESTORED,
        Count.PARKED,
        Count.KEPT_FOR_PARKED,
        Count.RESUMED,
        Count.PARKED_EXPIRED,
        Count.JOURNAL_READ,
        Count.JOURNAL_READ_BYTES,
        Count.STREAMS_CANCELLED,
    }
)

_counts: Counter[str] = Counter()


def bump(count: Count, n: int = 1) -> None:
    """Add ``n`` to one counter."""
    _counts[count] += n


def stats() -> dict[str, int]:
    """A snapshot of the counters that are not zero, by name."""
    # list(): one step under the GIL, so a scrape in another thread never sees the dict change size.
    return {str(name): value for name, value in list(_counts.items()) if value}


def reset() -> None:
    """Set every counter back to zero (tests; see :func:`wsmanager.testing.reset`)."""
    _counts.clear()


_state.owns(__name__, reset)
