"""The one writer of a socket: takes frames from its :class:`~wsmanager.connection._outbox.Outbox`
and awaits the server's ``send`` for each, so that senders never do.

:meth:`Writer.push` puts a frame into the outbox. When the outbox was idle
the frame is written at once, in the sender's turn of the loop; only if the
server makes that write wait (its transport is full) does the rest go on in
a task of its own (:func:`wsmanager._aio.run_eagerly`), and later frames
just queue behind it. On daphne, which buffers without bound, the bytes its
transport still holds count toward the backlog (a probe of the adapter).

Failures never reach the sender: over the backlog the socket is closed with
1013 "too slow" (what was queued before is still written first, where the
transport takes it), and a write the server refuses on an open connection
(a frame over its size limit) closes it with 1011 "write failed" and drops
what waits. The close, with the registry removal, runs in a task of its
own, started once. A write that fails because the connection is no longer
open (the client's close frame arrived, or the connection was lost, before
the server told the application: :func:`wsmanager.servers.connection_ended`)
closes nothing: the writer stops and drops what waits, and the socket ends
with the code the server's ``websocket.disconnect`` brings, the one the peer
chose, never a code of the writer's (a clean close is never taken for a
drop). Every refused or dropped frame is counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .. import servers
from .._aio import run_eagerly
from ..observe import _hub as observe
from ..observe._counters import Count, bump
from ..observe._logs import LogThrottle
from ..servers import DIRECT_LIMIT
from ._activity import Activity
from ._lifecycle import CloseCode
from ._outbox import Message, Outbox, Verdict

__all__ = ["DRAINED", "FLUSH_WAIT", "Writer"]

logger = logging.getLogger(__name__)

#: The backlog under which :meth:`Writer.drained` returns.
DRAINED = 64 * 1024
#: Seconds a close gives a writer that is waiting on the transport (:meth:`Writer.flush`).
FLUSH_WAIT = 1.0

# Frames that could not be translated, logged once a minute per process: they come from
# what many sockets share (a broadcast to N MessagePack sockets fails N times).
_untranslatable = LogThrottle()

Send = Callable[[Message], Awaitable[None]]
Close = Callable[[int, str], Awaitable[None]]


class Writer:
    """Writes one socket's outbox through ``send``; ``close`` is the socket's close."""

    __slots__ = (
        "_closing",
        "_task",
        "activity",
        "buffered",
        "close",
        "direct",
        "gate",
        "handler",
        "label",
        "outbox",
        "send",
        "translate",
    )

    def __init__(
        self,
        outbox: Outbox,
        close: Close,
        label: str = "",
        handler: str = "",
        activity: Activity | None = None,
    ) -> None:
        self.outbox = outbox
        self.handler = handler  # the socket's handler_name, for observers
        self.close = close
        self.label = label
        self.send: Send | None = None
        #: Bytes the server still buffers for this socket, where it can say (daphne, uvicorn).
        self.buffered: Callable[[], int] | None = None
        #: The server's synchronous write, where it has one (servers.direct_writer).
        self.direct: Callable[[Message], bool] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        #: While a topic subscribe is under way (wsmanager.topics): sees every frame
        #: first, and takes (True) the publications it holds until the answer.
        self.gate: Callable[[Message], bool] | None = None
        #: The socket's encoding of the frames made for many sockets (JSON text): a
        #: MessagePack socket's ``connection._encodings.to_binary``; None: as they are.
        self.translate: Callable[[Message], Message] | None = None
        #: The socket's activity: each frame written is its last activity out.
        self.activity = activity if activity is not None else Activity()

    def translated(self, message: Message) -> Message | None:
        """``message`` in the socket's encoding (``translate``); None if it has no form
        there (an int beyond 64 bits in a MessagePack socket's broadcast): dropped and
        counted (``dropped_write_failed``), logged at most once a minute per process."""
        if self.translate is None:
            return message
        try:
            return self.translate(message)
        except Exception:
            bump(Count.DROPPED_WRITE_FAILED)
            _untranslatable.log(
                logger, "untranslatable", logging.WARNING,
                "socket %s: a frame could not be translated; dropped", self.label, exc_info=True,
            )  # fmt: skip
            return None

    def push(self, message: Message) -> bool:
        """Queue ``message``; False if refused (and counted). Never waits for the transport."""
        gate = self.gate
        if gate is not None and gate(message):
            return True
        translated = self.translated(message)
        if translated is None:
            return False
        message = translated
        # The server's synchronous write takes a frame only while its transport holds at
        # most DIRECT_LIMIT bytes: the limits hold without asking how much it holds.
        if self.direct is not None and self.outbox.fits_at_once(message, DIRECT_LIMIT):
            try:
                written = self.direct(message)
            except Exception:  # the awaited path meets the same failure and closes 1011
                written = False
            if written:
                self.activity.last = time.time()
                if observe.hub is not None:
                    observe.hub.frame_sent(self.handler)
                return True
        buffered = self.buffered() if self.buffered is not None else 0
        verdict = self.outbox.put(message, buffered)
        if verdict is Verdict.WRITE:
            self._write()
        elif verdict is Verdict.QUEUED:
            pass
        elif verdict is Verdict.CLOSED:
            bump(Count.DROPPED_CLOSED)
            return False
        else:
            slow = verdict is Verdict.OVER_BYTES
            bump(Count.DROPPED_SLOW_CLIENT if slow else Count.DROPPED_OVERFLOW)
            why = f"backlog over {self.outbox.max_bytes} B" if slow else "outgoing queue full"
            if self._closing is None:
                logger.warning("socket %s: client reads too slowly (%s); closing 1013", self.label, why)
                self.close_soon(CloseCode.TRY_AGAIN_LATER, "too slow")
            return False
        return True

    def adapt(self, send: Send) -> None:
        """The handshake completed on ``send``'s server: take its backlog probe
        and its synchronous write, where it has them (:mod:`wsmanager.servers`)."""
        adapter = servers.adapter_for(send)  # detected once per socket
        self.buffered = adapter.backlog_probe(send)
        self.direct = adapter.direct_writer(send)

    async def start(self, opening: Callable[[], Awaitable[None]]) -> None:
        """The handshake completed: the frames ``opening`` sends go out first, then
        those queued during the handshake, in their order."""
        waiting = self.outbox.take_all()
        await opening()
        self.outbox.extend(waiting)
        if self.outbox.release():
            self._write()

    def _write(self) -> None:
        """Become the writer: write at once, in a task only from the first write that waits."""
        task = run_eagerly(self.write_out())
        if task is not None:
            self._task = task
            task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None

    async def flush(self) -> None:
        """Before a close: write what waits. A writer already waiting on the transport
        gets :data:`FLUSH_WAIT` seconds to finish; one still stuck then (a client that
        stopped reading) is cancelled, and what waits is dropped.

        (Cancelling a send at once would break some servers' connection, granian's
        among them, before the close frame could go out.)
        """
        task = self._task
        if task is not None:
            await asyncio.wait([task], timeout=FLUSH_WAIT)
            if not task.done():
                task.cancel()
        elif self.outbox.claim():
            await self.write_out()

    def backlog(self) -> int:
        """Bytes waiting for this client: in the outbox, plus what the server buffers (daphne)."""
        return self.outbox.bytes + (self.buffered() if self.buffered is not None else 0)

    async def drained(self, low: int = DRAINED) -> None:
        """Wait while more than ``low`` bytes wait for this client (ends when closed).

        For producers that can wait (the RPC call queue): a client that reads
        slowly then slows its own calls down instead of being closed for a
        burst of answers. Polls every 5 ms, only while over ``low``.
        """
        # A poll, not an Event: daphne's transport buffer says nothing when it drains.
        while not self.outbox.closed and self.backlog() > low:  # noqa: ASYNC110
            await asyncio.sleep(0.005)

    def stop(self) -> None:
        """Refuse every later frame and drop what waits (counted)."""
        bump(Count.DROPPED_CLOSED, self.outbox.close())

    async def write_out(self) -> None:
        """Write frames until the outbox is empty; the caller holds the outbox."""
        outbox, send = self.outbox, self.send
        try:
            assert send is not None, "Writer.send is set before the first frame is released"
            while (message := outbox.next()) is not None:
                await send(message)
                self.activity.last = time.time()
                if observe.hub is not None:
                    observe.hub.frame_sent(self.handler)
        except Exception as exc:
            if servers.connection_ended(send, exc):  # the disconnect brings the peer's code
                bump(Count.DROPPED_CLOSED)
                logger.debug("socket %s: write after the connection closed (%r); dropped", self.label, exc)
                self.stop()
                return
            bump(Count.DROPPED_WRITE_FAILED)
            logger.info("socket %s: write failed (%r); closing 1011", self.label, exc)
            self.stop()
            self.close_soon(CloseCode.INTERNAL_ERROR, "write failed")

    def close_soon(self, code: int, reason: str) -> None:
        """Close the socket in a task of its own (once)."""
        if self._closing is None:
            closing: Any = self.close(code, reason)
            self._closing = asyncio.get_running_loop().create_task(closing)
