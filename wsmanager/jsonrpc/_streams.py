"""Streams of one socket, both ways, paced by credit: an ``@rpc`` async generator's items
to the client, and a client's upload to a method's ``AsyncIterator`` parameter.

An ``@rpc`` method written as an async generator (``async def`` with
``yield``) answers a call with a stream (docs/protocol.md, section 14): each
item it yields goes out as an ``rpc.stream.item`` notification keyed by the
call's id, and the stream ends with the call's one JSON-RPC response,
``{"items": n}`` when the generator returned, an error when it raised.

:class:`Streams` holds the open streams of one socket and runs each in a task
of its own, apart from the call queue: a stream never holds up the socket's
other calls. It knows nothing of ASGI: it sends through the callbacks it is
given.

Guarantees:

* **Credit.** A stream starts with ``credit`` items granted; the client adds
  more with ``rpc.stream.credit``. The generator is resumed only while
  credit is left, one item per unit, so a reader that stops reading stops
  the generator at exactly what it granted. Credit held by one stream never
  exceeds ``max_credit`` (what grants add past it is lost); the first item
  announces ``credit`` and ``max_credit`` so that clients never grant past
  it. After each item is sent the stream waits until the socket's send
  backlog is under 64 KiB before it resumes the generator, so a reader that
  grants credit but stops reading never makes the server buffer without
  bound.
* **Closing.** ``rpc.cancel``, the end of the socket and an error all close
  the generator (``aclose``, or the cancellation of the ``await`` it is in),
  so its ``finally`` runs. A cancelled stream is answered -32021; a stream
  of a socket that is gone is answered nothing. Once the stream ended (its
  answer decided) a cancel or drop no longer interrupts its closing: the
  ``finally`` runs whole, the id is freed and the answer sent. The
  generator is never resumed once the socket is closed (checked before each
  resume, so it holds in the moment between the close and ``close_all``). A generator
  that swallows the cancellation and yields again has that item dropped.
  A ``CancelledError`` that is not the stream's (the generator awaited
  something cancelled elsewhere) is answered -32603.
* Every stream refused, cancelled or dropped is counted
  (``streams_refused``, ``streams_cancelled``, ``streams_dropped``).

An :class:`Upload` is the other way: the items a client sends under a
call's id (``rpc.stream.item``, then ``rpc.stream.end``), read by the method
with ``async for``. The server grants the credit there, so at most
``credit`` items wait in memory per upload; an item past it fails the upload.
``rpc.cancel`` fails it too and cancels the method's task wherever it awaits
(the dispatcher runs each upload method in a task of its own).

Non-guarantees: a stream does not survive the socket (connection recovery
does not resume it); items sent before a cancel was read still reach the
client; the generator's code between two ``yield`` runs to its next
``yield`` once resumed, whatever the client does meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from wsmanager_client import protocol
from wsmanager_client.protocol import ErrorObject, JsonId
from wsmanager_client.streams import CANCEL, CANCELLED, CREDIT, END, ITEM, STREAM_CANCELLED, TOO_MANY_STREAMS

from ..connection._limits import too_big
from ..exceptions import RpcError
from ..observe._counters import Count, bump
from ._params import BadParams, matches

__all__ = ["Streams", "Upload"]

logger = logging.getLogger(__name__)

#: The longest ``rpc.stream.credit``, ``rpc.cancel`` or ``rpc.stream.end`` frame that may be free
#: of the rate limit (characters); a real one is under 100.
FREE_CONTROL_SIZE = 256

Send = Callable[[str | bytes], Awaitable[bool]]
#: Encodes one notification for the socket (its codec: JSON text, or MessagePack with ``bytes``).
Encode = Callable[[str, dict[str, Any]], str | bytes]
Drained = Callable[[], Awaitable[None]]
#: Whether the socket is closed (its outbox takes nothing more).
Closed = Callable[[], bool]
#: Maps an exception raised by a generator to the error the call is answered with.
ErrorOf = Callable[[BaseException, str], ErrorObject]


@dataclass(eq=False)
class _Stream:
    method: str
    generator: AsyncGenerator[Any, None]
    credit: int
    #: The credit it started with (announced with the first item).
    initial: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    sent: int = 0
    #: The client's rpc.cancel was taken: the answer is -32021.
    cancelled: bool = False
    #: The socket is gone: nothing is sent, the answer included.
    dropped: bool = False
    #: The generator is being closed and the answer decided: cancels and drops leave it alone,
    #: so its ``finally`` runs whole and the stream is always removed and answered.
    closing: bool = False


class Upload:
    """The items a client sends under a call's id, as the ``AsyncIterator`` a method reads.

    The server grants the client credit (``rpc.stream.credit`` to the client):
    ``credit`` items when the method starts, then half of it back each time
    the method has read that many, so at most ``credit`` items wait here.
    An item past the credit fails the upload (the method's next read raises
    -32600), as does one that does not match the annotation (-32602) or a
    ``rpc.cancel`` (-32021), which also cancels the method's task (``task``)
    wherever it is awaiting; ``rpc.stream.end`` ends the iteration.
    """

    #: The task running the method that reads this upload (set by the dispatcher).
    task: asyncio.Task[Any] | None = None
    #: The client's ``rpc.cancel`` was taken.
    cancelled = False

    def __init__(self, call_id: JsonId, send: Send, credit: int, item: Any) -> None:
        self.call_id = call_id
        self._send = send
        self._credit = credit
        self._item = item
        self._allowed = 0  # granted and not yet received
        self._read = 0  # read since the last grant
        self._items: deque[Any] = deque()
        self._wake = asyncio.Event()
        self._ended = False
        self._error: Exception | None = None

    @property
    def live(self) -> bool:
        """Whether the upload has not failed yet."""
        return self._error is None

    @property
    def cancellable(self) -> bool:
        """Whether a cancel would still do something: the upload has not failed, or its method
        still runs (it caught the failure and works on)."""
        if self.cancelled:
            return False
        return self.live or (self.task is not None and not self.task.done())

    def takes(self, method: str) -> bool:
        """Whether a ``rpc.stream.item`` (or ``rpc.stream.end``) would be taken now."""
        if self._ended or self._error is not None:
            return False
        return method == END or self._allowed > 0

    async def start(self) -> None:
        """Grant the first credit: the client sends nothing before it."""
        await self._grant(self._credit)

    def put(self, item: Any) -> None:
        """An item arrived; past the credit it fails the upload (counted)."""
        if self._ended or self._error is not None:
            return
        if self._allowed <= 0:
            bump(Count.UPLOAD_ITEMS_REFUSED)
            self.fail(RpcError(protocol.INVALID_REQUEST, "Invalid Request", "an upload item past the credit"))
            return
        self._allowed -= 1
        self._items.append(item)
        self._wake.set()

    def end(self) -> None:
        """The client sent its last item."""
        self._ended = True
        self._wake.set()

    def fail(self, error: Exception) -> None:
        """End the upload with ``error``: the method's next read raises it."""
        if self._error is None:
            self._error = error
            self._items.clear()
            self._wake.set()

    def __aiter__(self) -> Upload:
        return self

    async def __anext__(self) -> Any:
        while not self._items and not self._ended and self._error is None:
            self._wake.clear()
            await self._wake.wait()
        if self._error is not None:
            raise self._error
        if not self._items:
            raise StopAsyncIteration
        item = self._items.popleft()
        if not matches(item, self._item):
            self.fail(BadParams(f"upload items must be {getattr(self._item, '__name__', self._item)}"))
            raise self._error  # type: ignore[misc]
        self._read += 1
        if self._read >= max(1, self._credit // 2) and not self._ended:
            grant, self._read = self._read, 0
            await self._grant(grant)
        return item

    async def _grant(self, n: int) -> None:
        self._allowed += n
        await self._send(protocol.encode_notification(CREDIT, {"id": self.call_id, "n": n}))


class Streams:
    """The open streams of one socket, by call id. See the module docstring."""

    def __init__(
        self,
        send: Send,
        drained: Drained,
        error_of: ErrorOf,
        *,
        closed: Closed,
        credit: int,
        max_credit: int,
        max_streams: int,
        max_item_size: int | None,
        encode: Encode = protocol.encode_notification,
    ) -> None:
        self._send = send
        self._encode = encode
        self._drained = drained
        self._error_of = error_of
        self._closed = closed
        self.credit = credit
        self.max_credit = max_credit
        self.max_streams = max_streams
        self.max_item_size = max_item_size
        self._open: dict[JsonId, _Stream] = {}
        self._uploads: dict[JsonId, Upload] = {}
        #: Every stream task until it is done (``close_all`` clears ``_open`` before they end).
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._open) + len(self._uploads)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._open or call_id in self._uploads

    def refusal(self, call_id: JsonId) -> ErrorObject | None:
        """Why a stream under ``call_id`` may not open now, or None: it may."""
        if call_id in self:
            return ErrorObject.standard(protocol.INVALID_REQUEST, "the id names a stream still open")
        if len(self) >= self.max_streams:
            bump(Count.STREAMS_REFUSED)
            return ErrorObject(TOO_MANY_STREAMS, "Too many streams", {"max": self.max_streams})
        return None

    def open(self, call_id: JsonId, method: str, generator: AsyncGenerator[Any, None]) -> None:
        """Start streaming ``generator``'s items under ``call_id`` (check :meth:`refusal` first)."""
        credit = min(self.credit, self.max_credit)
        stream = _Stream(method, generator, credit, credit)
        self._open[call_id] = stream
        stream.task = asyncio.get_running_loop().create_task(self._pump(call_id, stream))
        self._tasks.add(stream.task)
        stream.task.add_done_callback(self._tasks.discard)

    def free(self, method: str, params: dict[str, Any], size: int) -> bool:
        """Whether a lone stream frame is free of the rate limit: one that does its work (a grant
        that adds credit, an upload item within the credit, the first cancel or end of an open
        stream), and a control frame no longer than :data:`FREE_CONTROL_SIZE`. The rest cost a
        token like any frame, so a flood of useless ones is refused as usual."""
        call_id = params.get("id")
        if not valid_id(call_id):
            return False
        upload = self._uploads.get(call_id)
        if method == ITEM:
            return upload is not None and upload.takes(ITEM)
        if size > FREE_CONTROL_SIZE:
            return False
        if upload is not None:
            return (method == CANCEL and upload.cancellable) or (method == END and upload.takes(END))
        stream = self._open.get(call_id)
        if stream is None or stream.cancelled or stream.closing:
            return False
        if method == CREDIT:
            return _positive(params.get("n")) and stream.credit < self.max_credit
        return method == CANCEL

    def open_upload(self, call_id: JsonId, item: Any) -> Upload:
        """An upload under ``call_id`` (check :meth:`refusal` first); :meth:`close_upload` ends it."""
        upload = Upload(call_id, self._send, min(self.credit, self.max_credit), item)
        self._uploads[call_id] = upload
        return upload

    def close_upload(self, call_id: JsonId) -> None:
        self._uploads.pop(call_id, None)

    def upload_item(self, call_id: Any, item: Any) -> None:
        upload = self._uploads.get(call_id) if valid_id(call_id) else None
        if upload is not None:
            upload.put(item)

    def upload_end(self, call_id: Any) -> None:
        upload = self._uploads.get(call_id) if valid_id(call_id) else None
        if upload is not None:
            upload.end()

    def grant(self, call_id: Any, n: Any) -> bool:
        """Add ``n`` items of credit to the stream ``call_id``; False when it is not open or
        ``n`` is not a positive integer (nothing changes)."""
        stream = self._open.get(call_id) if valid_id(call_id) else None
        if stream is None or not _positive(n):
            return False
        stream.credit = min(stream.credit + n, self.max_credit)
        stream.wake.set()
        return True

    def cancel(self, call_id: Any) -> bool:
        """Close the stream ``call_id`` at the client's word (an upload: fail it and cancel its
        method); False when it is not open, or already cancelled, failed or closing, or is an
        upload whose method already ended (nothing changes, nothing is counted)."""
        upload = self._uploads.get(call_id) if valid_id(call_id) else None
        if upload is not None:
            if not upload.cancellable:
                return False
            bump(Count.STREAMS_CANCELLED)
            upload.cancelled = True
            upload.fail(RpcError(CANCELLED, STREAM_CANCELLED))
            if upload.task is not None:  # interrupt the method wherever it awaits
                upload.task.cancel()
            return True
        stream = self._open.get(call_id) if valid_id(call_id) else None
        if stream is None or stream.cancelled or stream.closing or stream.task is None:
            return False
        stream.cancelled = True
        bump(Count.STREAMS_CANCELLED)
        stream.task.cancel()
        return True

    def close_all(self) -> None:
        """The socket is gone: close every open stream (counted as dropped), answering nothing."""
        for stream in list(self._open.values()):
            if stream.task is not None and not stream.cancelled and not stream.closing:
                bump(Count.STREAMS_DROPPED)
                stream.dropped = True
                stream.task.cancel()
        self._open.clear()
        if self._uploads:
            bump(Count.STREAMS_DROPPED, len(self._uploads))
        self._uploads.clear()

    async def _pump(self, call_id: JsonId, stream: _Stream) -> None:
        answer: str | None = None
        try:
            try:
                answer = await self._items(call_id, stream)
            except asyncio.CancelledError as exc:
                if stream.cancelled:
                    answer = _cancelled(call_id)
                elif not stream.dropped:
                    # Not our cancel: the generator awaited something that someone else
                    # cancelled. The call still gets its answer.
                    task = asyncio.current_task()
                    if task is None or not task.cancelling():  # -32603, logged as any error
                        answer = protocol.encode_error(call_id, self._error_of(exc, stream.method))
            except Exception as exc:
                answer = protocol.encode_error(call_id, self._error_of(exc, stream.method))
            # From here on no cancel or drop interrupts the generator's finally, the removal
            # or the answer (cancel() and close_all() leave a closing stream alone).
            stream.closing = True
            await _close(stream)
        finally:
            stream.closing = True
            if self._open.get(call_id) is stream:
                del self._open[call_id]
        if answer is not None and not stream.dropped:
            await self._send(answer)

    async def _items(self, call_id: JsonId, stream: _Stream) -> str | None:
        """Send the generator's items as credit allows; the call's answer when it ends
        (None when the socket went)."""
        while True:
            while stream.credit <= 0:
                stream.wake.clear()
                await stream.wake.wait()
            if self._closed():  # the socket closed before close_all() reached this stream
                bump(Count.STREAMS_DROPPED)
                stream.dropped = True
                return None
            try:
                item = await anext(stream.generator)
            except StopAsyncIteration:
                return protocol.encode_result(call_id, {"items": stream.sent})
            if stream.dropped:  # a generator that swallowed the drop's cancellation
                return None
            if stream.cancelled:  # likewise for the client's cancel: the item is not sent
                return _cancelled(call_id)
            stream.credit -= 1
            params = {"id": call_id, "item": item}
            if stream.sent == 0:  # the first item announces the credit (docs/protocol.md, section 14)
                params["credit"], params["max_credit"] = stream.initial, self.max_credit
            try:
                text = self._encode(ITEM, params)
            except protocol.EncodeError:
                logger.error("stream %r yielded a value the socket's encoding has no form for", stream.method)
                return protocol.encode_error(call_id, ErrorObject.standard(protocol.INTERNAL_ERROR))
            if self.max_item_size is not None and too_big(text, self.max_item_size):
                bump(Count.RESULTS_TOO_LARGE)
                error = ErrorObject(protocol.INTERNAL_ERROR, "Result too large", {"max": self.max_item_size})
                return protocol.encode_error(call_id, error)
            if not await self._send(text):
                return None
            stream.sent += 1
            await self._drained()


async def _close(stream: _Stream) -> None:
    """Close the generator (its ``finally`` runs), even inside a cancelled task."""
    try:
        await stream.generator.aclose()
    except Exception:
        logger.exception("stream %r raised while closing", stream.method)


def _cancelled(call_id: JsonId) -> str:
    return protocol.encode_error(call_id, ErrorObject(CANCELLED, STREAM_CANCELLED))


def valid_id(value: Any) -> bool:
    """Whether ``value`` may be a JSON-RPC id (a string, a number or null; not a bool)."""
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


def _positive(n: Any) -> bool:
    """Whether ``n`` is a grant's valid count: an integer (not a bool), 1 or more."""
    return not isinstance(n, bool) and isinstance(n, int) and n > 0
