"""The per-socket outgoing queue, without I/O: order, accounting, one writer.

Every frame for a socket (from its handler, a broadcast, a view, another
process) is :meth:`Outbox.put` into its outbox; whoever gets
:attr:`Verdict.WRITE` back becomes the socket's one writer and takes frames
with :meth:`Outbox.next` until it returns None. So:

* frames are written in the order they were put, one at a time, never
  concurrently (the one-writer rule);
* a sender never waits for another socket's transport: a put only appends,
  and only the writer awaits the server;
* the backlog is what has been put and not yet taken by the writer, counted
  in frames and in bytes (text as UTF-8). A put that would take it over
  ``max_bytes`` (added to what the server itself still buffers, where it can
  say) or ``max_frames`` is refused with :attr:`Verdict.OVER_BYTES` or
  :attr:`Verdict.OVER_FRAMES`; the caller closes the socket (1013) and
  counts the drop. A single frame larger than ``max_bytes`` is accepted
  into an empty backlog, so that no frame is too big by this rule alone.
* before the handshake completes the outbox is *held*: frames queue and no
  writer starts until :meth:`Outbox.release` (:meth:`Outbox.take_all` and
  :meth:`Outbox.extend` let the opening frames go ahead of those).
* after :meth:`Outbox.close` every put is refused with :attr:`Verdict.CLOSED`.

Non-guarantees: nothing here knows whether a frame reached the client; a
frame the writer took is gone from the backlog even if the write then fails.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Any

__all__ = ["Message", "Outbox", "Verdict", "frame", "size_of"]

#: An ASGI message (``{"type": "websocket.send", "text": ...}`` and the like).
Message = dict[str, Any]


def frame(data: str | bytes) -> Message:
    """The ASGI message that sends ``data`` as a text (str) or binary (bytes) frame."""
    if isinstance(data, str):
        return {"type": "websocket.send", "text": data}
    if isinstance(data, bytes | bytearray | memoryview):
        return {"type": "websocket.send", "bytes": bytes(data)}
    raise TypeError(f"a frame is str (text) or bytes (binary), not {type(data).__name__}")


_last: tuple[Message | None, int] = (None, 0)


def size_of(message: Message) -> int:
    """The payload size of a frame message in bytes (text as UTF-8).

    A broadcast puts the same message object into every target's outbox;
    the last size computed is remembered, so it is measured once.
    """
    global _last
    seen, size = _last
    if seen is message:
        return size
    text = message.get("text")
    if text is not None:
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    else:
        size = len(message.get("bytes") or b"")
    _last = (message, size)
    return size


class Verdict(enum.IntEnum):
    """What :meth:`Outbox.put` did with a frame."""

    #: Queued; a writer is already at work (or the outbox is held).
    QUEUED = 0
    #: Queued, and the caller is now the writer: take frames with ``next()``.
    WRITE = 1
    #: Refused: the outbox is closed.
    CLOSED = 2
    #: Refused: over ``max_frames``.
    OVER_FRAMES = 3
    #: Refused: over ``max_bytes``.
    OVER_BYTES = 4


class Outbox:
    """The outgoing frames of one socket. Not thread-safe: one event loop uses it.

    Holds no queue while nothing waits (most sockets of a large server, most of the
    time): the queue is made when a frame must wait and let go when the writer
    empties it, so an idle socket costs no ``deque`` (about 600 bytes)."""

    __slots__ = ("_frames", "bytes", "closed", "held", "max_bytes", "max_frames", "writing")

    def __init__(self, max_bytes: int | None, max_frames: int, *, held: bool = True) -> None:
        self.max_bytes = max_bytes
        self.max_frames = max_frames
        self._frames: deque[tuple[Message, int]] | None = None
        #: Bytes put and not yet taken by the writer.
        self.bytes = 0
        #: True while a writer holds the outbox.
        self.writing = False
        self.held = held
        self.closed = False

    def __len__(self) -> int:
        return len(self._frames) if self._frames is not None else 0

    def put(self, message: Message, buffered: int = 0) -> Verdict:
        """Queue ``message``; ``buffered``: bytes the server still holds for this socket."""
        if self.closed:
            return Verdict.CLOSED
        size = size_of(message)
        frames = self._frames
        if (len(frames) if frames is not None else 0) >= self.max_frames:
            return Verdict.OVER_FRAMES
        backlog = self.bytes + buffered
        if self.max_bytes is not None and backlog and backlog + size > self.max_bytes:
            return Verdict.OVER_BYTES
        if frames is None:
            frames = self._frames = deque()
        frames.append((message, size))
        self.bytes += size
        if self.writing or self.held:
            return Verdict.QUEUED
        self.writing = True
        return Verdict.WRITE

    def take_all(self) -> list[tuple[Message, int]]:
        """Take every waiting frame out (with its size), to put them back with :meth:`extend`."""
        taken = list(self._frames or ())
        self._frames = None
        self.bytes = 0
        return taken

    def extend(self, frames: list[tuple[Message, int]]) -> None:
        """Put frames taken with :meth:`take_all` back, after those waiting now (no limits:
        they were accepted once)."""
        if not self.closed and frames:
            if self._frames is None:
                self._frames = deque()
            self._frames.extend(frames)
            self.bytes += sum(size for _, size in frames)

    def release(self) -> bool:
        """End the hold (the handshake completed); True: the caller is now the writer."""
        self.held = False
        return self.claim()

    def claim(self) -> bool:
        """Become the writer if nobody is and frames wait; True if so."""
        if self.writing or self.held or self.closed or not self._frames:
            return False
        self.writing = True
        return True

    def next(self) -> Message | None:
        """The writer's next frame, or None: then the writer has let go of the outbox."""
        if self._frames and not self.closed:
            message, size = self._frames.popleft()
            self.bytes -= size
            return message
        self._frames = None  # let go of the queue: nothing waits
        self.writing = False
        return None

    def fits_at_once(self, message: Message, buffered: int = 0) -> bool:
        """Whether :meth:`put` would take ``message`` and make the caller the writer
        with nothing before it, the server holding ``buffered`` bytes (or fewer):
        then the caller may write it at once instead of putting it (nothing
        waits, so order is kept; the same limits apply)."""
        if self.writing or self.held or self.closed:
            return False
        return self.max_bytes is None or not buffered or buffered + size_of(message) <= self.max_bytes

    def close(self) -> int:
        """Refuse every later put and forget what waits; returns how many frames were dropped."""
        dropped = len(self)
        self.closed = True
        self._frames = None
        self.bytes = 0
        return dropped
