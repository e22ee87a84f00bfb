"""What the client takes from a server, and the counts of what it did not deliver. No I/O.

A server is trusted to speak the protocol, not to be gentle: each of the
client's options below bounds what one server can make it hold, and
docs/python-client.md ("Limits") gives their defaults.

* ``max_message_size`` (1 MiB): a longer message closes the connection with
  1009 as soon as its frame header says so (``websockets`` checks it before
  reading the payload).
* ``max_batch_size`` (100): a longer batch is answered with one -32600,
  refused on the parsed array's length before any member is looked at.
* ``max_concurrent_handlers`` (100): how many of the server's calls and
  notifications (each member of a batch counting) may be in handlers at
  once, their answers' sending included. :class:`Slots` keeps that count.
  A frame that does not fit waits, and reading pauses (the server's writes
  back up: nothing is lost), unless a handler is itself waiting for an
  answer from the server, which a pause would hold up for ever: then the
  frame is refused, its calls answered -32000 at once and its notifications
  dropped.

Guarantees: every frame the client reads ends in a handler, in an answer
sent at once, or in a count of :class:`Stats`; every refusal is counted
(reported once per episode, see :meth:`Slots.refuse`). Non-guarantees: a
pause has no time limit (it ends when a handler finishes or the connection
is lost), and while it lasts the server's answers to the client's own calls
wait too.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Slots", "Stats"]


@dataclass(slots=True)
class Stats:
    """Counts, over a client's life (across its connections), of what it did not deliver or paused.

    ``Client.stats`` gives a copy.
    """

    #: connections the client closed with 1009: a message over ``max_message_size``
    closed_too_big: int = 0
    #: batches over ``max_batch_size``, answered with one -32600 and not run
    batches_refused: int = 0
    #: server calls answered -32000: no room under ``max_concurrent_handlers``
    calls_refused_busy: int = 0
    #: server notifications dropped: no room under ``max_concurrent_handlers``
    notifications_dropped_busy: int = 0
    #: times reading paused until a handler finished (nothing lost)
    pauses: int = 0
    #: replayed notifications the client had already delivered (connection recovery)
    duplicates_dropped: int = 0
    #: binary frames (the protocol is text frames only)
    binary_ignored: int = 0
    #: publications whose offset the subscription had delivered already (replays after a reconnection)
    publications_duplicate: int = 0
    #: publications for a topic with no subscription (unsubscribed meanwhile), or malformed
    publications_ignored: int = 0


class Slots:
    """How many of the server's calls and notifications are in handlers, against ``limit``.

    ``limit=None``: no limit. A frame needing more slots than the limit (a
    batch longer than it) fits only when no slot is taken, so it never waits
    for ever.
    """

    __slots__ = ("_overloaded", "limit", "used")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0
        self._overloaded = False

    def fits(self, needed: int) -> bool:
        return self.limit is None or self.used + needed <= self.limit or self.used == 0

    def take(self, needed: int) -> None:
        self.used += needed

    def give(self, needed: int) -> None:
        """``needed`` slots are free again; a slot free below the limit ends an overload episode."""
        self.used -= needed
        if self.limit is None or self.used < self.limit:
            self._overloaded = False

    def refuse(self) -> bool:
        """A frame is refused for want of room: true if it is the first of its episode (to report),
        false while the slots have stayed full since the last report."""
        first, self._overloaded = not self._overloaded, True
        return first
