"""Streams' wire names and the client's side of one stream, apart from any socket.

A call of a streaming method (docs/protocol.md, section 14) is answered by
``rpc.stream.item`` notifications keyed by the call's id, then by the call's
one response. The client paces the server with ``rpc.stream.credit`` and
ends the stream early with ``rpc.cancel``. The server imports the names and
codes from here, so both sides spell them once.

:class:`Inbound` is the client's end of one stream: the items that arrived
and not yet consumed, and the credit owed back. It does no I/O; the
connection layer feeds it and sends what it says (tests/test_streams.py).

:class:`Outbound` is the client's end of an upload (a server method that
reads an ``AsyncIterator`` param): the credit the server granted; the client
sends an item only for a unit of it.

Guarantees: items are handed over in arrival order, each once; the items
held never exceed what the client granted (the server's initial credit plus
every grant), so a consumer that stops consuming holds a bounded queue.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Final

__all__ = [
    "CANCEL",
    "CANCELLED",
    "CREDIT",
    "DEFAULT_CREDIT",
    "END",
    "ITEM",
    "STREAM_CANCELLED",
    "TOO_MANY_STREAMS",
    "Inbound",
    "Outbound",
]

#: One item of a stream, server to client: ``{"id": <call id>, "item": <any JSON>}``; the first
#: also carries the stream's initial credit and cap, ``"credit"`` and ``"max_credit"``.
ITEM: Final = "rpc.stream.item"
#: More credit, client to server (a notification): ``{"id": <call id>, "n": <int > 0>}``.
CREDIT: Final = "rpc.stream.credit"
#: End a stream early, client to server (a notification): ``{"id": <call id>}``.
CANCEL: Final = "rpc.cancel"
#: The last item of an upload was sent, client to server (a notification): ``{"id": <call id>}``.
END: Final = "rpc.stream.end"
#: The credit a stream starts with, unless the handler sets ``stream_credit``.
DEFAULT_CREDIT: Final = 16
#: A socket holds ``max_streams`` open streams already: the call is refused.
TOO_MANY_STREAMS: Final = -32020
#: The stream was ended by the client's ``rpc.cancel``.
CANCELLED: Final = -32021
STREAM_CANCELLED: Final = "Stream cancelled"

#: The end of the stream, queued behind its last item.
_END: Final = object()


class Inbound:
    """The client's end of one stream: items in arrival order, and the credit to grant.

    ``window``: how many items the client lets the server send ahead of what
    it consumed. The first item tells the client the stream is open, and
    announces the stream's initial credit and the most credit it may hold
    (``credit`` and ``max_credit``; :data:`DEFAULT_CREDIT` and no cap when
    absent). The window is cut to that cap, since the server drops credit
    past it. Credit is granted as items are consumed, whenever the window
    has room for at least half of it: so the credit the client has granted
    and not consumed never exceeds the window (nor the cap), unless the
    initial credit alone does, and the stream never stalls for a grant the
    server dropped.
    """

    __slots__ = ("_announced", "_arrived", "_cap", "_items", "_outstanding", "ended", "window")

    def __init__(self, window: int = DEFAULT_CREDIT) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive integer, not {window!r}")
        self.window = window
        self.ended = False
        self._items: deque[Any] = deque()
        self._arrived = asyncio.Event()
        self._outstanding = DEFAULT_CREDIT  # granted (the initial credit included), not consumed
        self._cap: int | None = None
        self._announced = False

    @property
    def limit(self) -> int:
        """The window in effect: ``window``, cut to the stream's announced ``max_credit``."""
        return self.window if self._cap is None else min(self.window, self._cap)

    def put(self, item: Any, credit: Any = None, max_credit: Any = None) -> None:
        """An item arrived (ignored once the stream ended). The first item's ``credit`` and
        ``max_credit`` (the stream's initial credit and cap) are taken in when they are positive
        integers; later ones are ignored."""
        if self.ended:
            return
        if not self._announced:
            self._announced = True
            if _positive(credit):
                self._outstanding = credit
            if _positive(max_credit):
                self._cap = max_credit
        self._items.append(item)
        self._arrived.set()

    def end(self) -> None:
        """The call's response arrived (or the call failed): no item follows."""
        if not self.ended:
            self.ended = True
            self._items.append(_END)
            self._arrived.set()

    async def next(self) -> tuple[bool, Any, int]:
        """Wait for the next item: ``(True, item, grant)``, or ``(False, None, 0)`` at the end.

        ``grant``: the credit to send the server now (0: none).
        """
        while not self._items:
            self._arrived.clear()
            await self._arrived.wait()
        item = self._items.popleft()
        if item is _END:
            self._items.appendleft(_END)  # the end stays the end
            return False, None, 0
        return True, item, self._grant()

    def _grant(self) -> int:
        self._outstanding -= 1
        limit = self.limit
        room = limit - self._outstanding
        if room < max(1, limit // 2):
            return 0
        self._outstanding += room
        return room


def _positive(n: Any) -> bool:
    return not isinstance(n, bool) and isinstance(n, int) and n > 0


class Outbound:
    """The client's end of one upload: the credit the server granted and not yet spent."""

    __slots__ = ("_changed", "credit", "ended")

    def __init__(self) -> None:
        self.credit = 0
        self.ended = False
        self._changed = asyncio.Event()

    def grant(self, n: Any) -> None:
        """The server's ``rpc.stream.credit``; a malformed one is ignored."""
        if not isinstance(n, bool) and isinstance(n, int) and n > 0:
            self.credit += n
            self._changed.set()

    def end(self) -> None:
        """The call was answered (or failed): nothing more is sent."""
        self.ended = True
        self._changed.set()

    async def spend(self) -> bool:
        """Wait for one unit of credit and spend it; False once the call ended."""
        while self.credit <= 0 and not self.ended:
            self._changed.clear()
            await self._changed.wait()
        if self.ended:
            return False
        self.credit -= 1
        return True
