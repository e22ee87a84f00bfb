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

#: One item of a stream, server to client: ``{"id": <call id>, "item": <any JSON>}``.
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
    it consumed. The server starts with :data:`DEFAULT_CREDIT`; the first
    item tells the client the stream is open, and :meth:`take` then asks to
    grant the difference (when ``window`` is larger). From then on credit is
    granted back in steps of half the window, as items are consumed.
    """

    __slots__ = ("_arrived", "_items", "_owed", "_started", "ended", "window")

    def __init__(self, window: int = DEFAULT_CREDIT) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive integer, not {window!r}")
        self.window = window
        self.ended = False
        self._items: deque[Any] = deque()
        self._arrived = asyncio.Event()
        self._owed = 0
        self._started = False

    def put(self, item: Any) -> None:
        """An item arrived (ignored once the stream ended)."""
        if not self.ended:
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
        grant = 0
        if not self._started:
            self._started = True
            grant = max(0, self.window - DEFAULT_CREDIT)
        self._owed += 1
        if self._owed >= max(1, self.window // 2):
            grant += self._owed
            self._owed = 0
        return grant


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
