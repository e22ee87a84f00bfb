"""``RpcHandler``: JSON-RPC 2.0 in both directions over a WebSocketHandler.

Client to server: only methods marked with :func:`rpc` can be called
(:mod:`wsmanager.jsonrpc._exposure`); params are bound and checked before the method
runs, a mismatch answered -32602 (:mod:`wsmanager.jsonrpc._params`).

Execution: calls run in tasks apart from the socket's receive loop, so a
method may ``await self.invoke(...)`` on its own client without deadlock,
and a slow method never delays other sockets or the disconnect. Per socket,
at most :attr:`RpcHandler.max_concurrent_calls` calls run at once (1 by
default: calls run in arrival order, like SignalR). Waiting and running
calls are bounded per socket by :attr:`RpcHandler.max_pending_calls` (calls,
each member of a batch counting) and :attr:`RpcHandler.max_pending_bytes`
(the frames' text); a frame that does not fit is answered -32000 at once,
all of it. ``rpc.ping`` (the heartbeat) is answered at once, ahead of queued
calls. The next call runs only once the client has read all but
``writer.DRAINED`` (64 KiB) of the answers before it, so a slow reader slows
its own calls instead of filling the send backlog. When the socket closes,
running calls are cancelled and pending invocations fail with
:class:`ConnectionClosed`.

Cost before work: a frame is decoded once, with the batch limit checked on
the array's length before any member is built (:func:`protocol.decode`);
the rate limit charges a batch one token per member (:meth:`frame_cost`),
and a batch that does not fit is refused whole, each call answered -32002.

Encodings (docs/protocol.md, section 15): the client's WebSocket subprotocol
chooses JSON (text frames, the default) or MessagePack (binary frames) among
:attr:`RpcHandler.encodings`, before ``on_connect`` runs. Results and
``invoke`` params are encoded for the socket itself (``bytes`` as MessagePack
``bin``); every other frame is JSON text translated on its way into a
MessagePack socket's outbox (:mod:`wsmanager.connection._encodings`). A frame of
the other type is answered -32001.

A client that closes on purpose says ``rpc.close`` first (docs/protocol.md,
section 5): the socket is released at once and for good, whatever close code
the server then reports (:meth:`~wsmanager.handlers._handler.WebSocketHandler.close_on_request`).
It is honoured alone in its frame (even over the rate limit, which it ends);
inside a batch it is refused with -32600.

Errors never close the socket: bad input gets the standard error; an
:class:`RpcError` raised by a method is sent as is; a string the registry
cannot store (a lone surrogate has no UTF-8 form: ``UnicodeEncodeError``) is
-32602; a result longer than :attr:`RpcHandler.max_result_size` is -32603
"Result too large"; any other exception is answered -32603 "Internal
error", with no detail sent to the client. Logging is throttled per socket
(:mod:`wsmanager.observe._logs`): at most one line per kind (bad input, method
errors, outages, oversized or unencodable results) per interval, the first
with its traceback, the rest counted and summed up in the next line or when
the socket closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from channels.db import database_sync_to_async

from wsmanager_client import encodings as wire
from wsmanager_client import protocol
from wsmanager_client.protocol import ErrorObject, Invalid, Request, Response, params_of
from wsmanager_client.streams import CANCEL, CANCELLED, CREDIT, DEFAULT_CREDIT, END, ITEM, STREAM_CANCELLED

from .._conf import get_settings
from ..connection._encodings import Codec, codec_for, negotiate, to_binary
from ..connection._lifecycle import State
from ..connection._limits import too_big
from ..connection._outbox import Message, frame, size_of
from ..exceptions import (
    ConfigurationError,
    ConnectionClosed,
    DeliveryError,
    InvokeError,
    InvokeTimeout,
    RegistryUnavailable,
    RpcError,
)
from ..handlers._handler import instance_attributes
from ..handlers._resumable import Resumable
from ..observe import _hub as observe
from ..observe._counters import Count, bump
from ..observe._logs import LogThrottle
from ..topics import Topic
from ..topics._subscriptions import Subscriptions
from ._declarations import ClientMethod, Notification
from ._exposure import MARK, check_permission, rpc
from ._invocations import Invocations
from ._params import BadParams, Method
from ._streams import Streams
from ._streams import valid_id as _valid_id

__all__ = ["RpcHandler", "rpc"]

logger = logging.getLogger(__name__)

#: ``data`` of the -32602 answering a string that has no UTF-8 form.
UNSTORABLE = "a string holds a lone surrogate: it is not valid UTF-8 and cannot be stored"
#: The client's word that it closes on purpose (docs/protocol.md, section 5).
CLOSE = "rpc.close"
#: The calls of topics (docs/protocol.md, "Topics"), routed to wsmanager.topics.
TOPIC_CALLS = frozenset({"rpc.subscribe", "rpc.unsubscribe"})
#: ``data`` of the -32600 answering ``rpc.close`` inside a batch.
CLOSE_ALONE = "rpc.close must be sent alone, not in a batch"
#: The client's words to its streams (docs/protocol.md, section 14), read on arrival.
STREAM_CONTROLS = frozenset({CREDIT, CANCEL, ITEM, END})
#: What ``_call`` returns for a call answered by a stream (its answer comes later).
STREAMING = object()


def _positive_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


class RpcHandler(Resumable):
    """A handler that speaks JSON-RPC 2.0 both ways. See the module docstring."""

    abstract: ClassVar[bool] = True
    #: Calls of one socket that may run at the same time (1: in arrival order).
    max_concurrent_calls: ClassVar[int] = 1
    #: Calls of one socket (each member of a batch counting) that may wait or
    #: run; a frame whose calls do not fit gets -32000 for each. Keep it at
    #: least ``max_batch_size``, or full batches are always refused.
    max_pending_calls: ClassVar[int] = 100
    #: Text of the frames whose calls wait or run (characters); a frame past
    #: it gets -32000, unless nothing is pending (one frame always fits).
    max_pending_bytes: ClassVar[int] = 1024 * 1024
    #: Largest accepted batch; larger ones get one -32600 error.
    max_batch_size: ClassVar[int] = 100
    #: Largest incoming frame (UTF-8 bytes); larger closes with 1009. Smaller
    #: than a raw handler's 1 MiB: a call needs little (docs/security.md).
    max_message_size: ClassVar[int | None] = 64 * 1024
    #: Largest answer frame (UTF-8 bytes; a lone response, or a batch's
    #: array); a result that would pass it is answered -32603 "Result too
    #: large" instead. Under daphne's 1 MiB, with room for the error members
    #: of a batch. None: no limit.
    max_result_size: ClassVar[int | None] = 896 * 1024
    #: Exposed name -> method description, collected from ``@rpc`` marks.
    rpc_methods: ClassVar[dict[str, Method]] = {}
    #: Notifications this handler sends, by method name (for the generated
    #: contract only: sending is not checked against it). See wsmanager.contract.
    sends: ClassVar[Mapping[str, Notification]] = {}
    #: Client methods this handler calls with ``invoke``, by name (likewise).
    client_methods: ClassVar[Mapping[str, ClientMethod]] = {}
    #: Topic patterns clients may subscribe to with ``rpc.subscribe`` (docs/topics.md);
    #: empty: ``rpc.subscribe`` and ``rpc.unsubscribe`` are unknown methods.
    topics: ClassVar[Sequence[Topic]] = ()
    #: Topics one socket may be subscribed to at once; the next subscribe gets -32012.
    max_subscriptions: ClassVar[int] = 100
    #: Streams (``@rpc`` async generators) one socket may have open; the next gets -32020.
    max_streams: ClassVar[int] = 4
    #: Items a stream may send before the client grants any (docs/protocol.md, section 14): 1 or
    #: more. Announced with the stream's first item, with ``max_stream_credit``.
    stream_credit: ClassVar[int] = DEFAULT_CREDIT
    #: Credit one stream may hold (items in flight), at least ``stream_credit``; grants past it
    #: are cut (the clients read it from the first item and never grant past it). Keep
    #: ``max_streams * max_stream_credit`` well under ``MAX_OUTGOING_QUEUE`` (1000 frames).
    max_stream_credit: ClassVar[int] = 128
    #: The encodings a client may choose with its WebSocket subprotocol (docs/protocol.md,
    #: section 15): ``"json"`` always, and ``"msgpack"`` unless removed from here.
    encodings: ClassVar[Sequence[str]] = (wire.JSON, wire.MSGPACK)
    #: This socket's encoding, chosen at the handshake (:mod:`wsmanager.connection._encodings`).
    codec: Codec

    # A socket's state starts from these values on the class, so that a socket's own
    # ``__dict__`` holds only what it has set: CPython shares one key table among the
    # instance dicts of a class of up to 30 names, and a socket's dict of 36 names cost
    # 1.6 KiB. What a socket uses only once it calls, is called or logs is made then
    # (None until): most sockets of a large server sit idle, and each object a socket
    # keeps costs memory and the garbage collector's walks.
    _calls: deque[tuple[list[Request | Invalid], bool, int]] | None = None
    _running: int = 0  # worker tasks
    _pending_calls: int = 0  # members of the frames queued or running, until answered
    _pending_bytes: int = 0  # text of those frames
    _decoded: tuple[str | bytes, protocol.Decoded] | None = None  # frame_cost's, for on_receive
    _log: LogThrottle | None = None
    _workers: set[asyncio.Task[None]] | None = None
    _invocations: Invocations | None = None
    _subscriptions: Subscriptions | None = None
    _streams: Streams | None = None
    # Ids that rpc.cancel named while their call waited or ran, before it opened a stream:
    # the stream is refused -32021 when it would open. At most max_pending_calls.
    _early_cancels: dict[Any, None] | None = None
    _running_ids: Counter[Any] | None = None  # ids of the calls being run
    _subprotocol: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        methods: dict[str, Method] = {}
        reserved = instance_attributes(cls)
        for klass in reversed(cls.__mro__):
            for attr, fn in vars(klass).items():
                mark = getattr(fn, MARK, None)
                if isinstance(mark, tuple) and callable(fn):
                    exposed, permission, sensitive = mark
                    if attr in reserved:  # the instance's own attribute would hide the method
                        raise ConfigurationError(
                            f"{cls.__qualname__}.{attr} has the name of an attribute every handler "
                            f"instance sets ({attr!r}), which would hide the method; give it "
                            "another name (@rpc(name=...) keeps the name clients call)"
                        )
                    if hasattr(RpcHandler, attr):  # a hook or base method: never callable
                        raise ConfigurationError(
                            f"{cls.__qualname__}.{attr} overrides a handler method and cannot "
                            "be exposed with @rpc; give the method another name"
                        )
                    methods[exposed] = Method.of(attr, fn, permission, sensitive)
        super().__init_subclass__(**kwargs)
        cls.rpc_methods = methods
        if not all(isinstance(t, Topic) for t in cls.topics):
            raise ConfigurationError(f"{cls.__qualname__}.topics must hold topic(...) patterns only")
        if (
            isinstance(cls.encodings, str)
            or wire.JSON not in cls.encodings
            or not set(cls.encodings) <= set(wire.ENCODINGS)
        ):
            raise ConfigurationError(
                f"{cls.__qualname__}.encodings must be a tuple of {wire.ENCODINGS} holding {wire.JSON!r}, "
                f"not {cls.encodings!r}"
            )
        credit, cap = cls.stream_credit, cls.max_stream_credit
        if not _positive_int(credit) or not _positive_int(cap) or cap < credit:
            raise ConfigurationError(
                f"{cls.__qualname__}: stream_credit must be an integer of 1 or more and "
                f"max_stream_credit one at least as large (got {credit!r} and {cap!r})"
            )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.codec = codec_for(wire.JSON)

    def _note(self, kind: str, level: int, msg: str, *args: Any, exc_info: Any = None) -> None:
        """Log at most one line per ``kind`` and interval for this socket (wsmanager.observe._logs)."""
        if self._log is None:
            self._log = LogThrottle()
        self._log.log(logger, kind, level, msg, *args, exc_info=exc_info)

    # -- the handshake: the encoding -------------------------------------------------
    async def websocket_connect(self, message: Message) -> None:
        """Choose the encoding before anything is sent (frames sent from ``on_connect``
        are queued, and translated on their way in as every later one)."""
        offered = self.scope.get("subprotocols") or ()
        name, self._subprotocol = negotiate([str(p) for p in offered], self.encodings)
        self.codec = codec_for(name)
        if self.codec.binary:
            self.writer.translate = to_binary
        await super().websocket_connect(message)

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        """Complete the handshake with the negotiated subprotocol (unless given one).

        The socket speaks what the subprotocol accepted says, so a client reads it as
        the server writes it: a ``subprotocol`` given that is not the negotiated one
        selects its encoding (``wsmanager.v1.msgpack`` MessagePack, anything else JSON).
        """
        chosen = subprotocol if subprotocol is not None else self._subprotocol
        if chosen != self._subprotocol:
            self._subprotocol = chosen
            self.codec = codec_for(wire.encoding_of(chosen))
            self.writer.translate = to_binary if self.codec.binary else None
        await super().accept(chosen, headers)

    # -- server to client ---------------------------------------------------------
    async def on_open(self) -> None:
        hello = {"id": self.id, **self.session_params()}
        await self.send_frame(protocol.encode_notification("rpc.connected", hello))
        self.replay()

    async def invoke(self, method: str, /, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call a method of this client and return its result.

        Raises InvokeTimeout, RemoteError (the client's error object) or
        ConnectionClosed (the socket closed first). Raises InvokeError at once
        when awaited from the socket's own receive loop (``on_connect``,
        ``on_open``, ``on_receive``, ``on_disconnect``): the answer could not be
        read until the hook returns. ``@rpc`` methods run apart and may invoke.
        """
        return await self.invoke_params(method, params_of(args, kwargs), timeout=timeout)

    async def invoke_params(
        self, method: str, params: tuple[Any, ...] | dict[str, Any], /, *, timeout: float | None = None
    ) -> Any:
        """:meth:`invoke` with the params as one value, so named params may have any name."""
        if asyncio.current_task() is self._receive_task:
            raise InvokeError(self.id, method, "cannot wait for an answer inside the socket's own hooks")
        if self.state not in (State.CONNECTING, State.OPEN):
            raise ConnectionClosed(self.id)
        waiting = self._invoke_params(method, params, timeout)
        return await (waiting if observe.hub is None else observe.hub.invoke(self, method, waiting))

    async def _invoke_params(
        self, method: str, params: tuple[Any, ...] | dict[str, Any], timeout: float | None
    ) -> Any:
        invocations = self._invocation_table()
        call_id, future = invocations.start(method)
        wait = get_settings().invoke_timeout if timeout is None else timeout
        try:
            if not await self.send_frame(self.codec.request(method, params, call_id)):
                raise ConnectionClosed(self.id)
            return await asyncio.wait_for(future, wait)
        except TimeoutError:
            raise InvokeTimeout(self.id, method, wait) from None
        finally:
            invocations.forget(call_id)

    def _invocation_table(self) -> Invocations:
        """The calls this server made to the client (made on first use)."""
        if self._invocations is None:
            self._invocations = Invocations()
            self._invocations.socket_id = self.id
        return self._invocations

    # -- client to server -------------------------------------------------------------
    def frame_cost(self, message: str | bytes) -> int:
        """One token per member of a batch (a lone message or a refused batch: 1).

        Decodes the frame (kept for ``on_receive`` / ``on_rate_limited``, which
        get the same message); a frame of the wrong type costs 1. A lone stream frame that
        does its work costs nothing (``Streams.free``: a grant that adds credit,
        an upload item within the credit, a first cancel or end): the credit
        bounds how many of them can do work. A free frame does not clear the
        socket's strikes (``Intake.check``).
        """
        decoded = self._decode(message)
        if decoded.batch:
            return len(decoded.items)
        lone = decoded.items[0] if decoded.items else None
        if isinstance(lone, Request) and self._is_stream_control(lone) and self._streams is not None:
            params = lone.params
            if isinstance(params, dict) and self._streams.free(lone.method, params, len(message)):
                return 0
        return 1

    def _is_stream_control(self, request: Request) -> bool:
        return request.notification and request.method in STREAM_CONTROLS

    def _stream_control(self, request: Request) -> None:
        """``rpc.stream.credit``, ``rpc.stream.item``, ``rpc.stream.end`` or ``rpc.cancel``:
        done at once; malformed ones, and those naming no open stream, are ignored, except a
        cancel, kept for a call that may still wait in the queue."""
        params = request.params
        if not isinstance(params, dict):
            return
        call_id, streams = params.get("id"), self._streams
        if request.method == CANCEL:
            if (streams is None or not streams.cancel(call_id)) and self._call_pending(call_id):
                if self._early_cancels is None:
                    self._early_cancels = {}
                self._early_cancels[call_id] = None
        elif streams is None:
            return
        elif request.method == CREDIT:
            streams.grant(call_id, params.get("n"))
        elif request.method == ITEM:
            if "item" in params:
                streams.upload_item(call_id, params["item"])
        else:
            streams.upload_end(call_id)

    def _call_pending(self, call_id: Any) -> bool:
        """Whether a call with this id waits in the queue or runs (at most max_pending_calls)."""
        if not _valid_id(call_id) or len(self._early_cancels or ()) >= self.max_pending_calls:
            return False
        if self._running_ids and self._running_ids[call_id]:
            return True
        return any(
            isinstance(item, Request) and not item.notification and item.id == call_id
            for work, _batch, _size in self._calls or ()
            for item in work
        )

    def _decode(self, message: str | bytes) -> protocol.Decoded:
        """The frame decoded once: frame_cost's result when it saw this very message."""
        kept, self._decoded = self._decoded, None
        if kept is not None and kept[0] is message:
            return kept[1]
        decoded = self.codec.decode(message, self.max_batch_size)
        self._decoded = (message, decoded)
        return decoded

    async def on_receive(self, message: str | bytes) -> None:
        decoded = self._decode(message)
        self._decoded = None
        work: list[Request | Invalid] = []
        for item in decoded.items:
            if isinstance(item, Response):
                self._invocation_table().settle(item)
            elif isinstance(item, Request) and self._is_stream_control(item):
                self._stream_control(item)
            elif decoded.batch and isinstance(item, Request) and item.method == CLOSE:
                work.append(Invalid(ErrorObject.standard(protocol.INVALID_REQUEST, CLOSE_ALONE), item.id))
            else:
                work.append(item)
        if not work:
            return
        first = work[0]
        if not decoded.batch and isinstance(first, Request) and first.method == CLOSE:
            await self._close_as_asked(first)
            return
        bad = next((item for item in work if isinstance(item, Invalid)), None)
        if bad is not None:
            self._note(
                "bad_input",
                logging.INFO,
                "socket %s: invalid input answered %d %s (%s)",
                self.id,
                bad.error.code,
                bad.error.message,
                bad.error.data,
            )
        if not decoded.batch and isinstance(first, Invalid):
            await self.send_frame(protocol.encode_error(first.id, first.error))
            return
        if not decoded.batch and isinstance(first, Request) and first.method == "rpc.ping":
            # Heartbeats skip the call queue: a slow call must not make a
            # live connection look dead to the client.
            if not first.notification:
                await self.send_frame(protocol.encode_result(first.id, "pong"))
            return
        self._enqueue_calls(work, decoded.batch, len(message))

    async def _close_as_asked(self, request: Request) -> None:
        """``rpc.close``: answer it if it is a call (``null``, ahead of the close frame),
        then close for good with the code it gives (``{"code": n}`` or ``[n]``)."""
        params = request.params
        code = params.get("code") if isinstance(params, dict) else (params[0] if params else None)
        if not request.notification:
            await self.send_frame(protocol.encode_result(request.id, None))
        await self.close_on_request(code)

    def _enqueue_calls(self, work: list[Request | Invalid], batch: bool, size: int) -> None:
        """Queue a frame's calls, or answer them all -32000 when they do not fit."""
        calls, pending = len(work), self._pending_calls
        if pending + calls > self.max_pending_calls or (
            pending and self._pending_bytes + size > self.max_pending_bytes
        ):
            busy = ErrorObject.standard(protocol.SERVER_BUSY)
            answers = [
                protocol.encode_error(item.id, busy if isinstance(item, Request) else item.error)
                for item in work
                if not (isinstance(item, Request) and item.notification)
            ]
            bump(Count.CALLS_REFUSED_BUSY, sum(isinstance(item, Request) for item in work))
            asyncio.get_running_loop().create_task(self._answer(answers, batch))
            return
        self._pending_calls += calls
        self._pending_bytes += size
        if self._calls is None:
            self._calls = deque()
        self._calls.append((work, batch, size))
        if self._running < self.max_concurrent_calls:
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._work())
            if self._workers is None:
                self._workers = set()
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def _work(self) -> None:
        try:
            while self._calls and self.state is State.OPEN:
                work, batch, size = self._calls.popleft()
                try:
                    answers: list[str | bytes] = []
                    room = self.max_result_size
                    for item in work:
                        answer = await self._run(item, room)
                        if answer is not None:
                            answers.append(answer)
                            if room is not None:  # UTF-8 bytes, and a comma or a bracket
                                room -= 1 + size_of(frame(answer))
                    await self._answer(answers, batch)
                    if self._subscriptions is not None:  # held publications go out after the answer
                        self._subscriptions.settle()
                    # Backpressure: the next call waits while the client has not
                    # read this answer (it stays pending, so a client that stops
                    # reading is answered -32000, not closed for a burst).
                    await self.writer.drained()
                finally:
                    self._pending_calls -= len(work)
                    self._pending_bytes -= size
        finally:
            self._running -= 1

    async def _answer(self, answers: Sequence[str | bytes], batch: bool) -> None:
        """Send encoded responses: one, or a batch array (nothing when empty)."""
        if answers:
            await self.send_frame(self.codec.join(answers) if batch else answers[0])

    async def _run(self, item: Request | Invalid, room: int | None = None) -> str | bytes | None:
        """Run one call; its encoded response, or None for a notification.

        ``room``: bytes left in the answer frame (None: no limit); a result
        that does not fit is answered -32603 "Result too large" instead.
        """
        if isinstance(item, Invalid):
            return protocol.encode_error(item.id, item.error)
        if item.notification:
            return await self._run_request(item, room)
        if self._running_ids is None:
            self._running_ids = Counter()
        running = self._running_ids
        running[item.id] += 1
        try:
            return await self._run_request(item, room)
        finally:
            running[item.id] -= 1
            if not running[item.id]:
                del running[item.id]
            if self._early_cancels:  # a cancel kept for this call is spent, whatever the method
                self._early_cancels.pop(item.id, None)

    async def _run_request(self, item: Request, room: int | None) -> str | bytes | None:
        try:
            call = self._call(item)
            result = await (call if observe.hub is None else observe.hub.rpc(self, item.method, call))
            if result is STREAMING:  # answered when the stream ends (wsmanager.jsonrpc._streams)
                return None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = self._error_for(exc, "rpc", item.method)
        else:
            if item.notification:
                return None
            try:
                text = self.codec.result(item.id, result)
            except protocol.EncodeError as exc:
                self._note(
                    "bad_result",
                    logging.ERROR,
                    "rpc %r on socket %s returned a value that is not JSON (or not MessagePack)",
                    item.method,
                    self.id,
                    exc_info=exc,
                )
                error = ErrorObject.standard(protocol.INTERNAL_ERROR)
            else:
                if room is None or not too_big(text, room):
                    return text
                bump(Count.RESULTS_TOO_LARGE)
                self._note(
                    "result_too_large",
                    logging.WARNING,
                    "rpc %r on socket %s: result of %d characters over max_result_size %s",
                    item.method,
                    self.id,
                    len(text),
                    self.max_result_size,
                )
                error = ErrorObject(
                    protocol.INTERNAL_ERROR, "Result too large", {"max": self.max_result_size}
                )
        return None if item.notification else protocol.encode_error(item.id, error)

    async def _call(self, request: Request) -> Any:
        if request.method == "rpc.ping":
            return "pong"
        if request.method in TOPIC_CALLS and self.topics:
            if self._subscriptions is None:
                self._subscriptions = Subscriptions(self)
            if request.method == "rpc.subscribe":
                return await self._subscriptions.subscribe(request.params)
            return await self._subscriptions.unsubscribe(request.params)
        method = self.rpc_methods.get(request.method)
        if method is None:
            raise RpcError(protocol.METHOD_NOT_FOUND, "Method not found", request.method)
        if method.permission is not None:
            await check_permission(self, request.method, method.permission)
        bound = method.bind(request.params)
        func = getattr(self, method.attr)
        if method.is_stream:
            self._open_stream(request, func(*bound.args, **bound.kwargs))
            return STREAMING
        if method.upload is not None:
            return await self._with_upload(request, method, func, bound.arguments)
        if method.is_async:
            return await func(*bound.args, **bound.kwargs)
        run = database_sync_to_async(func, thread_sensitive=method.thread_sensitive)
        return await run(*bound.args, **bound.kwargs)

    def _stream_table(self, request: Request) -> Streams:
        """The socket's streams, once ``request`` may open one (else the RpcError refusing it)."""
        if self._streams is None:
            self._streams = Streams(
                self.send_frame,
                self.writer.drained,
                self._stream_error,
                closed=lambda: self.writer.outbox.closed,
                credit=self.stream_credit,
                max_credit=self.max_stream_credit,
                max_streams=self.max_streams,
                max_item_size=self.max_result_size,
                encode=lambda method, params: self.codec.notification(method, params),
            )
        if (
            self._early_cancels and self._early_cancels.pop(request.id, False) is None
        ):  # cancelled while it waited
            bump(Count.STREAMS_CANCELLED)
            raise RpcError(CANCELLED, STREAM_CANCELLED)
        refusal = self._streams.refusal(request.id)
        if refusal is not None:
            raise RpcError(refusal.code, refusal.message, refusal.data)
        return self._streams

    def _open_stream(self, request: Request, generator: Any) -> None:
        """Stream ``generator``'s items as the answer to ``request`` (a notification: not run)."""
        if request.notification:  # no id to key items by: the generator never starts (nothing runs)
            return
        # refused: the generator never started, so dropping it runs nothing
        self._stream_table(request).open(request.id, request.method, generator)

    async def _with_upload(
        self, request: Request, method: Method, func: Any, arguments: Mapping[str, Any]
    ) -> Any:
        """Run a method that reads the client's upload (docs/protocol.md, section 14)."""
        if request.notification:  # no id to key items by: never run
            return None
        assert method.upload is not None
        streams = self._stream_table(request)
        upload = streams.open_upload(request.id, method.upload_item)
        try:
            await upload.start()
            # A task of its own, so that rpc.cancel interrupts the method and nothing else;
            # cancelling this task (the socket's end) cancels the method's too.
            task = asyncio.ensure_future(func(**arguments, **{method.upload: upload}))
            upload.task = task
            if upload.cancelled:  # the cancel came while the first credit went out
                task.cancel()
            try:
                return await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if upload.cancelled and task.cancelled() and not (current and current.cancelling()):
                    raise RpcError(CANCELLED, STREAM_CANCELLED) from None
                raise
        finally:
            streams.close_upload(request.id)

    def _stream_error(self, exc: BaseException, method: str) -> ErrorObject:
        """The error a stream whose generator raised ``exc`` is answered with (as a call's)."""
        return self._error_for(exc, "stream", method)

    def _error_for(self, exc: BaseException, kind: str, method: str) -> ErrorObject:
        """The error a call or a stream (``kind``: "rpc" or "stream") that raised ``exc`` is
        answered with, logged throttled (the module docstring's mapping)."""
        if isinstance(exc, RpcError):
            return ErrorObject(exc.code, exc.message, exc.data)
        if isinstance(exc, BadParams):
            return ErrorObject.standard(protocol.INVALID_PARAMS, str(exc))
        if isinstance(exc, UnicodeEncodeError):
            # Only a client's JSON can carry a lone surrogate ("\udfff"); it has
            # no UTF-8 form, so a registry or channel layer cannot store it.
            self._note(
                "unstorable",
                logging.INFO,
                "%s %r on socket %s: a string has no UTF-8 form",
                kind,
                method,
                self.id,
            )
            return ErrorObject.standard(protocol.INVALID_PARAMS, UNSTORABLE)
        if isinstance(exc, RegistryUnavailable | DeliveryError):
            self._note("unavailable", logging.WARNING, "%s %r on socket %s: %s", kind, method, self.id, exc)
            return ErrorObject.standard(protocol.UNAVAILABLE)
        self._note(
            "method_error",
            logging.ERROR,
            "%s %r on socket %s of %s raised",
            kind,
            method,
            self.id,
            self.handler_name,
            exc_info=exc,
        )
        return ErrorObject.standard(protocol.INTERNAL_ERROR)

    async def on_rate_limited(self, message: str | bytes) -> None:
        """Answer each call of the refused frame with -32002 (notifications: nothing).

        A batch is refused whole: every call in it is answered -32002 and none
        runs; answers to our invocations in it are still read.
        """
        limited = ErrorObject.standard(protocol.RATE_LIMITED)
        decoded = self._decode(message)
        self._decoded = None
        lone = decoded.items[0] if not decoded.batch and decoded.items else None
        if isinstance(lone, Request) and lone.method == CLOSE:  # it ends the flood: never refused
            await self._close_as_asked(lone)
            return
        for item in decoded.items:  # answers to our invocations are never refused, nor grants
            if isinstance(item, Response):
                self._invocation_table().settle(item)
            elif isinstance(item, Request) and self._is_stream_control(item):
                self._stream_control(item)
        answers = [
            protocol.encode_error(item.id, limited)
            for item in decoded.items
            if isinstance(item, Request) and not item.notification
        ]
        await self._answer(answers, decoded.batch)

    async def on_released(self, code: int | None) -> None:
        if self._calls is not None:
            self._calls.clear()
        self._decoded = None
        if self._log is not None:
            for kind, count in self._log.flush().items():
                logger.info("socket %s closed: %d more %r lines were not logged", self.id, count, kind)
        for task in list(self._workers or ()):
            if task is not asyncio.current_task():
                task.cancel()
        if self._invocations is not None:
            self._invocations.fail_all(code)
        if self._streams is not None:
            self._streams.close_all()
