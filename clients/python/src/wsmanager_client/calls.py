"""Bookkeeping of the client's own calls, apart from any socket.

A :class:`CallTable` numbers calls, keeps those waiting for an answer
(*pending*) and the calls and notifications waiting for a connection
(*queued*), arms each call's timeout, and settles calls from the server's
responses. It never touches the network: the connection layer asks it what
to send and tells it what arrived, so every rule below is tested without a
socket (tests/test_client.py).

Guarantees:

* Every call settles exactly once: with its result, :class:`RemoteError`,
  :class:`InvokeTimeout`, :class:`ConnectionClosed` (in flight when the
  connection dropped) or :class:`NotConnected` (never sent). Whatever
  settles it first wins; later answers for it are ignored.
* A call's timeout runs from its creation, queued or not: a queued call that
  times out is removed from the queue and never sent.
* The queue keeps calls and notifications in the order they were made and
  holds at most ``queue_size`` of them together.

Non-guarantees: nothing is retried. A call in flight when the connection
drops fails even though the server may have run it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .encodings import JSON, MSGPACK, pack
from .exceptions import ConnectionClosed, InvokeTimeout, NotConnected, RemoteError
from .protocol import VERSION, EncodeError, Response, encode_notification, encode_request

__all__ = ["Call", "CallTable", "Note"]


@dataclass(eq=False)
class Call:
    """One call of ours: its frame, its future and its timeout."""

    id: int
    method: str
    text: str | bytes
    future: asyncio.Future[Any]
    timeout: float | None
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Note:
    """A queued notification: just its frame."""

    method: str
    text: str | bytes


Queued = Call | Note


class CallTable:
    """Pending and queued calls of one client (across its reconnections).

    ``socket_id`` is the id the exceptions name: the client sets it to its
    current socket id ("" while it has none).
    """

    def __init__(self, queue_size: int, encoding: str = JSON) -> None:
        self.queue_size = queue_size
        #: The frames' encoding: a MessagePack client's calls are packed as such (bytes as bytes).
        self.encoding = encoding
        self.socket_id = ""
        self._ids = itertools.count(1)
        self._pending: dict[int, Call] = {}
        self._queue: list[Queued] = []

    @property
    def pending(self) -> int:
        """How many calls were sent and wait for their answer."""
        return len(self._pending)

    @property
    def queued(self) -> int:
        """How many calls and notifications wait for a connection."""
        return len(self._queue)

    def new_call(
        self, method: str, params: Sequence[Any] | dict[str, Any] | None, timeout: float | None
    ) -> Call:
        """A numbered call with its timeout armed (``None``: no timeout).

        Raises :class:`~wsmanager_client.protocol.EncodeError` (a ``ValueError``) at
        once when the params cannot be encoded as JSON; nothing is kept then.
        """
        if not isinstance(method, str):
            raise TypeError(f"method must be a string, not {type(method).__name__}")
        call_id = next(self._ids)
        text = self._encoded(encode_request, method, params, call_id)
        loop = asyncio.get_running_loop()
        call = Call(call_id, method, text, loop.create_future(), timeout)
        if timeout is not None:
            call.timer = loop.call_later(timeout, self._expire, call)
        return call

    def new_note(self, method: str, params: Sequence[Any] | dict[str, Any] | None) -> Note:
        if not isinstance(method, str):
            raise TypeError(f"method must be a string, not {type(method).__name__}")
        return Note(method, self._encoded(encode_notification, method, params))

    def _encoded(self, encode: Callable[..., str], method: str, *rest: Any) -> str | bytes:
        """The frame as JSON text, or as MessagePack: the same message, packed with its
        params as they are (``bytes`` as ``bin``)."""
        if self.encoding != MSGPACK:
            return encode(method, *rest)
        params = rest[0]
        message: dict[str, Any] = {"jsonrpc": VERSION, "method": method}
        if params is not None:
            if isinstance(params, str | bytes | bytearray):
                raise EncodeError(f"params must be a sequence or a mapping, not {type(params).__name__}")
            message["params"] = dict(params) if isinstance(params, Mapping) else list(params)
        if len(rest) > 1:
            message["id"] = rest[1]
        return pack(message)

    def refusal(self, *, closed: bool, fail_fast: bool, queueable: bool = True) -> str | None:
        """Why a message that cannot be sent now may not be queued either, or ``None``: queue it."""
        if closed:
            return "closed"
        if fail_fast:
            return "fail-fast"
        if not queueable:
            return "not-queued"
        if len(self._queue) >= self.queue_size:
            return "queue-full"
        return None

    def enqueue(self, entry: Queued) -> None:
        self._queue.append(entry)

    def take_queued(self) -> Queued | None:
        """The oldest queued entry, removed from the queue (settled calls are skipped)."""
        while self._queue:
            entry = self._queue.pop(0)
            if isinstance(entry, Note) or not entry.future.done():
                return entry
        return None

    def requeue_front(self, entry: Queued) -> None:
        """Put back an entry that :meth:`take_queued` gave but that could not be sent."""
        self._queue.insert(0, entry)

    def sent(self, call: Call) -> None:
        """The call's frame is (about to be) written: its answer is now awaited."""
        if not call.future.done():
            self._pending[call.id] = call

    def resolve(self, response: Response) -> bool:
        """Settle the call ``response`` answers.

        False when no pending call has its id (a late answer, an unknown id, null).
        """
        if response.id is None or isinstance(response.id, str):
            return False
        call = self._pending.get(int(response.id)) if response.id == int(response.id) else None
        if call is None:
            return False
        if response.error is not None:
            err = response.error
            self.settle(call, exc=RemoteError(self.socket_id, call.method, err.code, err.message, err.data))
        else:
            self.settle(call, result=response.result)
        return True

    def settle(self, call: Call, result: Any = None, exc: BaseException | None = None) -> None:
        """Settle ``call`` once, wherever it waits, and disarm its timer. Later settlements do nothing."""
        self.discard(call)
        if call.future.done():
            return
        if exc is not None:
            call.future.set_exception(exc)
        else:
            call.future.set_result(result)

    def discard(self, call: Call) -> None:
        """Forget ``call`` without settling it (its caller stopped waiting)."""
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        if self._pending.get(call.id) is call:
            del self._pending[call.id]
        if call in self._queue:
            self._queue.remove(call)

    def fail_in_flight(self, code: int) -> None:
        """The connection dropped: every pending call fails with ``ConnectionClosed(code)``.

        Also when the session is then resumed (connection recovery): the
        server does not replay answers, so the client cannot know whether or
        how a call in flight ran.
        """
        for call in list(self._pending.values()):
            self.settle(call, exc=ConnectionClosed(self.socket_id, code))

    def fail_queued(self, refusal: Callable[[str], NotConnected] | None = None) -> None:
        """The client closed: queued calls fail with ``NotConnected("closed")``, or with
        ``refusal(method)`` when given (the client gave up and says why).

        Queued notifications are dropped.
        """
        queue, self._queue = self._queue, []
        for entry in queue:
            if isinstance(entry, Call):
                closed = NotConnected(self.socket_id, entry.method, "closed")
                self.settle(entry, exc=refusal(entry.method) if refusal else closed)

    def _expire(self, call: Call) -> None:
        assert call.timeout is not None
        self.settle(call, exc=InvokeTimeout(self.socket_id, call.method, call.timeout))
