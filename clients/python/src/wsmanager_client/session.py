"""The Python client's session: one ``websockets`` connection at a time, kept up by itself.

:class:`Session` is the part of :class:`~.connection.Client` that runs the
lifecycle: it opens a socket, flushes the queue, reads frames, answers the
server's calls, sends the heartbeat, and reconnects with backoff until the
close-code policy (:mod:`.policy`) says stop. :class:`~.connection.Client`
adds the public surface (``connect``, ``close``, ``invoke``, ``notify``,
``on``) on top of it.

Guarantees kept here:

* Leaving OPEN and failing the calls in flight happen in one step: no call
  slips between.
* Answers to the server's calls go out only on the socket the call came in on.
* The heartbeat (``rpc.ping`` every ``heartbeat_interval``) drops a
  connection whose server stops answering within ``heartbeat_timeout``.
* A bug in the loop fails every waiting call and ``connect()`` waiter instead
  of leaving them waiting forever.
* With a server that offers recovery (:mod:`.recovery`), an abrupt drop is
  followed by an attempt to resume the session, and a notification whose
  offset was already seen never reaches a handler.
* What the server sends is bounded (:mod:`.limits`): a message over
  ``max_message_size`` closes the connection with 1009, a batch over
  ``max_batch_size`` is answered -32600 unrun, and at most
  ``max_concurrent_handlers`` of its calls and notifications are in
  handlers; the reader pauses for room, or refuses (-32000, or a dropped
  notification) while a handler waits for an answer. Each refusal is
  counted in :attr:`stats` and reported to ``on_error`` as a
  :class:`LimitExceeded`; errors, pings and refusals are answered by the
  reader itself, with no task.
* The heartbeat drops a connection only when nothing at all arrived from
  the server within ``heartbeat_timeout`` of a ping: an answer held up behind
  a backlog of frames, or by the client's own pause, is not a dead server.
* Topics (:mod:`.topics`): after every ``rpc.connected`` each subscription is
  sent again from its position; ``rpc.publication`` is routed by the reader
  itself, so callbacks see publications in the order of the frames, and a
  coroutine callback starts only when the one before it (of the same
  subscription) has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Final

from . import encodings as wire
from .calls import Call, CallTable
from .encodings import MSGPACK
from .events import (
    Background,
    Callback,
    Closed,
    Connected,
    Reconnected,
    Reconnecting,
    Recovered,
    RecoveryFailed,
)
from .exceptions import (
    ConnectionClosed,
    HandshakeRefused,
    InvokeError,
    InvokeTimeout,
    LimitExceeded,
    NotConnected,
    RemoteError,
    RpcError,
    WsManagerError,
)
from .limits import Slots, Stats
from .policy import (
    ABNORMAL,
    POLICY_VIOLATION,
    PROTOCOL_ERROR,
    Options,
    State,
    backoff_delay,
    check_transition,
    should_reconnect,
)
from .protocol import (
    SERVER_BUSY,
    ErrorObject,
    Invalid,
    Request,
    Response,
    batch_limit_data,
    decode,
    dumps,
    encode_batch,
    encode_error,
    encode_result,
    error_response,
)
from .recovery import Recovery, frame_offsets, packed_offsets
from .serving import Handler, Handlers
from .streams import CREDIT, ITEM, Inbound, Outbound
from .topics import Delivery, Position, Subscription, Subscriptions
from .transport import ClientConnection, Loss, WsConnectionClosed, abort, ended, is_open, open_socket

__all__ = ["Session"]

logger = logging.getLogger("wsmanager_client")

MESSAGE_TOO_BIG: Final = 1009

#: The session whose handler the current task serves (its calls may wait on that session's reader).
_serving: ContextVar[Session | None] = ContextVar("wsmanager_client.serving", default=None)


class Session:
    """The state and the connection loop of a :class:`~.connection.Client` (its base class)."""

    def __init__(
        self,
        url: str | Callable[[], str],
        *,
        origin: str | None = None,
        headers: Mapping[str, str] | None = None,
        handlers: Mapping[str, Handler] | None = None,
        on_connected: Callback | None = None,
        on_reconnecting: Callback | None = None,
        on_reconnected: Callback | None = None,
        on_closed: Callback | None = None,
        on_error: Callback | None = None,
        on_recovered: Callback | None = None,
        on_recovery_failed: Callback | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(url, str) and not callable(url):
            raise TypeError(f"url must be a string or a function returning one, not {type(url).__name__}")
        self.url = url
        self.origin = origin
        self.headers = dict(headers or {})
        self.options = Options(**options)
        self.on_connected, self.on_reconnecting, self.on_reconnected = (
            on_connected,
            on_reconnecting,
            on_reconnected,
        )
        self.on_closed, self.on_error = on_closed, on_error
        self.on_recovered, self.on_recovery_failed = on_recovered, on_recovery_failed
        self._recovery = Recovery(enabled=self.options.recover)
        self._state = State.IDLE
        self._ws: ClientConnection | None = None
        self._id: str | None = None
        self._previous_id: str | None = None
        self._connected_before = False
        if self.options.encoding == MSGPACK and not wire.available():
            raise ImportError(
                'encoding="msgpack" needs the msgpack package: pip install wsmanager-client[msgpack]'
            )
        self._calls = CallTable(self.options.queue_size, self.options.encoding)
        self._binary = self.options.encoding == MSGPACK
        self._handlers = Handlers(on_error=self._report, encoding=self.options.encoding)
        for method, fn in (handlers or {}).items():
            self._handlers.on(method, fn)
        self._attempt = 0
        self._runner: asyncio.Task[None] | None = None
        self._background = Background()
        self._ready: asyncio.Future[str | None] | None = None
        self._flushing = False
        self._loss: tuple[int, str] | None = None
        self._stats = Stats()
        self._slots = Slots(self.options.max_concurrent_handlers)
        self._room = asyncio.Event()  # set when a slot frees or a handler starts waiting for an answer
        self._handler_calls = 0  # calls made by handlers, waiting for their answers
        self._paused = False  # the reader waits for room
        self._frames_in = 0  # frames read, for the heartbeat: any frame shows that the server lives
        self._topics = Subscriptions()
        self._greeted = False  # the current socket got rpc.connected: subscriptions may be sent
        self._attempts = itertools.count(1)  # numbers of the rpc.subscribe calls
        self._streams: dict[int, Inbound] = {}  # open streams by call id
        self._uploads: dict[int, Outbound] = {}  # open uploads by call id

    # --- sending on the current socket -------------------------------------------------
    async def _call(
        self,
        method: str,
        params: Sequence[Any] | dict[str, Any] | None,
        timeout: float | None,
        queueable: bool,
    ) -> Any:
        call = self._calls.new_call(method, params, timeout)
        from_handler = _serving.get() is self
        if from_handler:  # a paused reader must not hold up this answer: it refuses instead
            self._handler_calls += 1
            self._room.set()
        try:
            ws = self._sendable()
            if ws is not None:
                self._calls.sent(call)
                with contextlib.suppress(WsConnectionClosed):  # the loss fails the call
                    await ws.send(call.text)
            else:
                closed = self._state is State.CLOSED
                reason = self._calls.refusal(
                    closed=closed, fail_fast=self.options.fail_fast, queueable=queueable
                )
                if reason is not None:
                    self._calls.settle(call, exc=NotConnected(self._calls.socket_id, method, reason))
                else:
                    self._calls.enqueue(call)
            return await call.future
        finally:
            self._calls.discard(call)  # cancelled: forget it; settled: nothing left to do
            if from_handler:
                self._handler_calls -= 1

    def _sendable(self) -> ClientConnection | None:
        ws = self._ws
        if self._state is State.OPEN and not self._flushing and ws is not None and is_open(ws):
            return ws
        return None

    # --- the connection loop ------------------------------------------------------------
    async def _run(self) -> None:
        try:
            while True:
                loss = await self._one_connection()
                retry = not loss.final and should_reconnect(
                    self.options, self._attempt, loss.code, loss.reason
                )
                if not retry:
                    self._finish(loss.code, loss.reason, loss.error, loss)
                    self._emit(self.on_closed, Closed(loss.code, loss.reason, loss.was_clean, False))
                    return
                self._attempt += 1
                delay = backoff_delay(self._attempt, self.options)
                self._transition(State.RECONNECTING)
                if loss.opened:
                    self._emit(self.on_closed, Closed(loss.code, loss.reason, loss.was_clean, True))
                self._emit(self.on_reconnecting, Reconnecting(self._attempt, delay, loss.code, loss.reason))
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise  # close() owns the clean-up
        except Exception as exc:  # a bug here must not leave callers waiting forever
            logger.exception("wsmanager_client: connection loop failed")
            if self._ws is not None:
                abort(self._ws)
            self._ws = None
            self._calls.fail_in_flight(ABNORMAL)
            self._finish(ABNORMAL, "client error", exc)
            self._emit(self.on_closed, Closed(ABNORMAL, "client error", False, False))

    async def _one_connection(self) -> Loss:
        self._transition(State.CONNECTING)
        self._loss = None
        try:
            url = self.url() if callable(self.url) else self.url
        except Exception as exc:  # the URL function is broken: retrying will not help
            return Loss(ABNORMAL, f"cannot open: {exc!r}", final=True, error=exc)
        if isinstance(url, str):
            url = self._recovery.url_for(url)  # with wsm_resume/wsm_offset after an abrupt drop
        options = self.options
        attempt = asyncio.ensure_future(
            open_socket(
                url,
                self.origin,
                self.headers,
                options.connect_timeout,
                options.max_message_size,
                [wire.SUBPROTOCOLS[MSGPACK]] if self._binary else None,
            )
        )
        try:
            opened = await asyncio.shield(attempt)
        except asyncio.CancelledError:  # close(): a socket opened at this very moment must not leak
            attempt.cancel()
            attempt.add_done_callback(_abort_if_opened)
            raise
        if isinstance(opened, Loss):
            return opened
        if self._binary and opened.subprotocol != wire.SUBPROTOCOLS[MSGPACK]:
            reason = "the server does not accept MessagePack (no wsmanager.v1.msgpack subprotocol)"
            await opened.close(POLICY_VIOLATION, "MessagePack not accepted")
            return Loss(POLICY_VIOLATION, reason, final=True, status=None, detail=reason)
        ws = self._ws = opened
        self._attempt = 0
        self._transition(State.OPEN)
        self._flushing = True
        heartbeat = None
        if self.options.heartbeat_interval is not None:
            heartbeat = self._spawn(self._heartbeat(ws, self.options.heartbeat_interval))
        try:
            await self._flush(ws)
            async for data in ws:
                await self._on_frame(ws, data)
        except WsConnectionClosed:
            pass
        finally:
            self._flushing = False
            if heartbeat is not None:
                heartbeat.cancel()
        loss = ended(ws, self._loss)
        if loss.sent and loss.code == MESSAGE_TOO_BIG:
            self._stats.closed_too_big += 1
            limit = self.options.max_message_size or 0
            action = f"closed the connection with 1009 ({loss.reason})"
            self._report(LimitExceeded("max_message_size", limit, action))
        # Leaving OPEN and failing what is in flight happen in one step: no call slips between.
        self._ws = None
        self._calls.fail_in_flight(loss.code)
        self._forget_id()
        self._recovery.lost(loss.code)
        self._greeted = False
        self._topics.lost()
        return loss

    async def _flush(self, ws: ClientConnection) -> None:
        try:
            while (entry := self._calls.take_queued()) is not None:
                if isinstance(entry, Call):
                    self._calls.sent(entry)
                await ws.send(entry.text)
        finally:
            self._flushing = False

    async def _heartbeat(self, ws: ClientConnection, interval: float) -> None:
        while ws is self._ws:
            await asyncio.sleep(interval)
            if ws is not self._ws:
                return
            pauses, frames = self._stats.pauses, self._frames_in
            try:
                await self._call("rpc.ping", None, self.options.heartbeat_timeout, queueable=False)
            except InvokeTimeout:
                if self._paused or self._stats.pauses != pauses or self._frames_in != frames:
                    continue  # the server spoke meanwhile, or the client's own pause kept it unread
                if ws is self._ws:
                    self._loss = (ABNORMAL, "heartbeat timeout")
                    abort(ws)  # no closing handshake with a dead peer
                return
            except (RemoteError, ConnectionClosed):
                continue  # answered with an error (rate limit) or not sent: the socket is alive or gone

    def _transition(self, new: State) -> None:
        check_transition(self._state, new)
        self._state = new

    def _forget_id(self) -> None:
        if self._id is not None:
            self._previous_id = self._id
        self._id = None
        self._calls.socket_id = ""

    def _finish(
        self, code: int, reason: str, error: BaseException | None = None, loss: Loss | None = None
    ) -> None:
        """Become closed: queued calls fail, connect() waiters get NotConnected.

        After the client gave up (``loss``: how its last attempt or connection
        ended), they say why: :class:`HandshakeRefused` with the HTTP status
        and the server's reason, or ``NotConnected("closed")`` whose
        ``detail`` is the last failure; its exception is their ``__cause__``.
        """
        self._forget_id()
        refusal = _refusal(self._previous_id or "", loss)
        self._calls.fail_queued(refusal)
        self._greeted = False
        self._topics.lost()
        for subscription in self._topics:  # never answered: subscribe() raises; the others stay
            if not subscription.subscribed_once and self._topics.remove(subscription):
                subscription.first.set_exception(refusal("rpc.subscribe"))
        self._transition(State.CLOSED)
        ready, self._ready = self._ready, None
        if ready is not None and not ready.done():
            exc = refusal("connect")
            exc.__cause__ = error
            ready.set_exception(exc)

    # --- incoming -------------------------------------------------------------------------
    async def _on_frame(self, ws: ClientConnection, data: str | bytes) -> None:
        """Take one frame: settle answers, then serve, answer or refuse its requests (:mod:`.limits`)."""
        self._frames_in += 1
        if isinstance(data, str) and self._binary:
            # A server speaking MessagePack never sends text (docs/protocol.md, section 15): a
            # protocol error, the socket closed 1002; the reconnection policy decides what next.
            logger.warning("a text frame on a MessagePack connection; closing 1002")
            await ws.close(PROTOCOL_ERROR, "text frame on a MessagePack connection")
            return
        if isinstance(data, str):
            decoded = decode(data, max_batch=self.options.max_batch_size)
        elif self._binary:
            decoded = wire.unpack(bytes(data), max_batch=self.options.max_batch_size)
        else:
            self._stats.binary_ignored += 1  # a JSON connection takes text frames only
            return
        requests: list[Request | Invalid] = []
        offsets: list[Any] | None = None
        for index, item in enumerate(decoded.items):
            if isinstance(item, Response):
                if not self._calls.resolve(item) and item.id is None and item.error is not None:
                    self._report(RpcError(item.error.code, item.error.message, item.error.data))
            elif isinstance(item, Request) and item.method == "rpc.connected" and item.notification:
                self._on_hello(item.params)
            elif isinstance(item, Request) and item.method == ITEM and item.notification:
                self._on_stream_item(item.params)
            elif isinstance(item, Request) and item.method == CREDIT and item.notification:
                params = item.params if isinstance(item.params, dict) else {}
                upload = self._uploads.get(params.get("id"))  # type: ignore[arg-type]
                if upload is not None:
                    upload.grant(params.get("n"))
            else:
                if isinstance(item, Request) and item.notification and self._recovery.active:
                    if offsets is None:  # the decoded items keep no extension member
                        offsets = frame_offsets(data) if isinstance(data, str) else packed_offsets(data)
                    if index < len(offsets) and not self._recovery.accept(offsets[index]):
                        self._stats.duplicates_dropped += 1  # replayed, and already delivered
                        continue
                if isinstance(item, Request) and item.notification and item.method == "rpc.publication":
                    self._on_publication(item.params)
                    continue
                requests.append(item)
        if not requests:
            return
        if not decoded.batch and await self._answer_at_once(ws, requests[0]):
            return
        needed = sum(isinstance(item, Request) for item in requests)
        if needed == 0:  # a batch of invalid members only
            errors = [error_response(item.id, item.error) for item in requests if isinstance(item, Invalid)]
            await self._send(ws, encode_batch(errors))
            return
        if not await self._admit(ws, needed):
            await self._refuse(ws, requests, decoded.batch)
            return
        self._slots.take(needed)
        self._spawn(self._answer(ws, requests, decoded.batch, needed))

    async def _answer_at_once(self, ws: ClientConnection, item: Request | Invalid) -> bool:
        """Answer a lone invalid message or ``rpc.ping`` from the reader, with no task; false for others."""
        if isinstance(item, Invalid):
            limit = self.options.max_batch_size
            if limit is not None and item.error.data == batch_limit_data(limit):
                self._stats.batches_refused += 1
                self._report(LimitExceeded("max_batch_size", limit, "answered -32600, nothing run"))
            await self._send(ws, encode_error(item.id, item.error))
            return True
        if item.method == "rpc.ping":
            if not item.notification:
                await self._send(ws, encode_result(item.id, "pong"))
            return True
        return False

    async def _admit(self, ws: ClientConnection, needed: int) -> bool:
        """Wait until ``needed`` handler slots are free (reading pauses meanwhile): true.

        False, at once or when it happens during the wait, while a handler
        waits for an answer that the pause would hold up, or when the
        connection is lost.
        """
        paused = False
        while not self._slots.fits(needed):
            if self._handler_calls or ws is not self._ws or not is_open(ws):
                return False
            if not paused:
                paused = True
                self._stats.pauses += 1
                logger.debug("wsmanager_client: %d handlers in flight; reading paused", self._slots.used)
            self._room.clear()
            self._paused = True
            room = asyncio.ensure_future(self._room.wait())
            lost = asyncio.ensure_future(ws.wait_closed())
            try:
                await asyncio.wait((room, lost), return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._paused = False
                room.cancel()
                lost.cancel()
        return True

    async def _refuse(self, ws: ClientConnection, items: list[Request | Invalid], batch: bool) -> None:
        """No room: each call is answered -32000, each notification dropped; all counted, reported once."""
        busy = ErrorObject.standard(SERVER_BUSY)
        answers: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, Invalid):
                answers.append(error_response(item.id, item.error))
            elif item.notification:
                self._stats.notifications_dropped_busy += 1
            else:
                self._stats.calls_refused_busy += 1
                answers.append(error_response(item.id, busy))
        if self._slots.refuse():
            limit = self._slots.limit or 0
            action = "calls over it answered -32000, notifications over it dropped (counted in Client.stats)"
            logger.warning("wsmanager_client: %d handlers in flight; %s", self._slots.used, action)
            self._report(LimitExceeded("max_concurrent_handlers", limit, action))
        if answers:
            await self._send(ws, encode_batch(answers) if batch else dumps(answers[0]))

    async def _send(self, ws: ClientConnection, text: str | bytes | None) -> None:
        """Send a frame: JSON text (a MessagePack connection packs it first) or MessagePack."""
        if text is not None and ws is self._ws:
            with contextlib.suppress(WsConnectionClosed):
                await ws.send(wire.transcode(text) if self._binary and isinstance(text, str) else text)

    def _on_stream_item(self, params: Any) -> None:
        """An item of one of our streams; one of no open stream (a late one, after a cancel) is dropped."""
        call_id = params.get("id") if isinstance(params, dict) else None
        inbound = self._streams.get(call_id) if isinstance(call_id, int) else None
        if inbound is not None and "item" in params:
            inbound.put(params["item"], params.get("credit"), params.get("max_credit"))

    def _on_hello(self, params: Any) -> None:
        sid = params.get("id") if isinstance(params, dict) else None
        self._id = sid if isinstance(sid, str) else None
        self._calls.socket_id = self._id or ""
        outcome = self._recovery.hello(params)
        reconnect, self._connected_before = self._connected_before, True
        ready, self._ready = self._ready, None
        self._emit(self.on_connected, Connected(self._id, reconnect))
        if reconnect:
            self._emit(self.on_reconnected, Reconnected(self._id, self._previous_id))
        if outcome is not None and outcome.recovered:
            self._emit(self.on_recovered, Recovered(self._id, outcome.replayed))
        elif outcome is not None:
            self._emit(self.on_recovery_failed, RecoveryFailed(outcome.reason, self._previous_id, self._id))
        self._greeted = True
        for subscription in self._topics:  # a resumed session too: the replay fills any gap
            self._send_subscribe(subscription)
        if ready is not None and not ready.done():
            ready.set_result(self._id)

    async def _answer(
        self, ws: ClientConnection, items: list[Request | Invalid], batch: bool, taken: int
    ) -> None:
        """Run a frame's handlers and send their answer; its ``taken`` slots are held until it is sent."""
        _serving.set(self)
        try:
            text = await self._handlers.answer(items, batch)
            await self._send(ws, text)
        finally:
            self._slots.give(taken)
            self._room.set()

    # --- topics (:mod:`.topics`) -------------------------------------------------------------
    def _send_subscribe(self, subscription: Subscription) -> None:
        attempt = subscription.attempt = next(self._attempts)
        since = subscription.start_from()
        params: dict[str, Any] = {"topic": subscription.topic}
        if since is not None:
            params["since"] = since.as_params()
        self._spawn(self._subscribe(subscription, attempt, params, since))

    async def _subscribe(
        self, subscription: Subscription, attempt: int, params: dict[str, Any], since: Position | None
    ) -> None:
        try:
            result = await self._call("rpc.subscribe", params, self._call_timeout(), queueable=False)
        except WsManagerError as exc:
            if subscription.attempt == attempt:  # else the socket is gone: the next one subscribes again
                self._subscription_failed(subscription, exc)
            return
        if subscription.attempt != attempt:
            return
        subscription.attempt = 0
        if not _is_subscribe_result(result):
            detail = f"rpc.subscribe answered without offset and epoch: {result!r}"
            self._subscription_failed(
                subscription, InvokeError(self._id or "", "rpc.subscribe", detail[:300])
            )
            return
        duplicates = subscription.duplicates
        delivery = subscription.accepted(result, since)
        self._stats.publications_duplicate += subscription.duplicates - duplicates
        if not subscription.first.done():
            subscription.first.set_result(subscription)
        self._hand_over(subscription, delivery)

    def _subscription_failed(self, subscription: Subscription, exc: WsManagerError) -> None:
        """An ``rpc.subscribe`` was refused (or not answered in time): the subscription ends."""
        if isinstance(exc, InvokeTimeout):  # the server may have subscribed late: undo it
            self._spawn(self._tell_unsubscribed(subscription.topic))
        if not self._topics.remove(subscription):
            return
        if not subscription.first.done():
            subscription.first.set_exception(exc)
        else:
            logger.warning("wsmanager_client: resubscribing to %r failed: %s", subscription.topic, exc)
            self._emit(subscription.on_error or self.on_error, exc)

    async def _unsubscribe(self, subscription: Subscription) -> None:
        on_server = subscription.active or subscription.attempt != 0
        if not self._topics.remove(subscription):
            return
        if not subscription.first.done():
            subscription.first.cancel()
        if on_server:
            await self._tell_unsubscribed(subscription.topic)

    async def _tell_unsubscribed(self, topic: str) -> None:
        if self._sendable() is None:
            return  # not connected: a new socket has no subscription
        with contextlib.suppress(WsManagerError):
            await self._call("rpc.unsubscribe", {"topic": topic}, self._call_timeout(), queueable=False)

    def _on_publication(self, params: Any) -> None:
        routed = self._topics.route(params)
        if routed is None:
            self._stats.publications_ignored += 1
            return
        subscription, publication = routed
        duplicates = subscription.duplicates
        self._hand_over(subscription, subscription.deliver(publication))
        self._stats.publications_duplicate += subscription.duplicates - duplicates

    def _hand_over(self, subscription: Subscription, delivery: Delivery) -> None:
        """Report, deliver in order, and subscribe again from the position when a gap remains."""
        if delivery.unrecovered is not None:
            self._emit(subscription.on_unrecovered, delivery.unrecovered)
        for publication in delivery.ready:
            try:
                result = subscription.on_publication(publication)
            except Exception as exc:
                logger.exception("wsmanager_client: the callback of topic %r raised", subscription.topic)
                self._report(exc)
                continue
            if inspect.isawaitable(result):
                subscription.tail = self._spawn(_in_turn(subscription.tail, result, self._report))
        if delivery.repair and self._greeted and subscription.attempt == 0 and not subscription.closed:
            self._send_subscribe(subscription)

    def _call_timeout(self) -> float | None:
        timeout = self.options.timeout
        return None if timeout is None or timeout == math.inf else float(timeout)

    def _report(self, exc: BaseException) -> None:
        self._emit(self.on_error, exc)

    def _emit(self, callback: Callback | None, event: Any) -> None:
        self._background.call(callback, event)

    def _spawn(self, awaitable: Any) -> asyncio.Task[Any]:
        return self._background.spawn(awaitable)


def _refusal(socket_id: str, loss: Loss | None) -> Callable[[str], NotConnected]:
    """The exception, per method, of what could not be sent because the client closed after ``loss``."""
    if loss is None:
        return lambda method: NotConnected(socket_id, method, "closed")
    if loss.status is not None:
        status, detail = loss.status, loss.detail
        return lambda method: HandshakeRefused(socket_id, method, status, detail)
    if loss.opened:
        detail = f"the connection closed with {loss.code}" + (f": {loss.reason}" if loss.reason else "")
    else:
        detail = loss.reason
    return lambda method: NotConnected(socket_id, method, "closed", detail)


def _is_subscribe_result(result: Any) -> bool:
    offset = result.get("offset") if isinstance(result, dict) else None
    is_offset = isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0
    return is_offset and isinstance(result.get("epoch"), str)


async def _in_turn(
    previous: asyncio.Future[Any] | None, callback: Any, report: Callable[[BaseException], None]
) -> None:
    """Run a coroutine callback once the one before it (same subscription) has finished."""
    if previous is not None and not previous.done():
        await asyncio.wait([previous])
    try:
        await callback
    except Exception as exc:
        logger.exception("wsmanager_client: a topic callback raised")
        report(exc)


def _abort_if_opened(attempt: asyncio.Future[ClientConnection | Loss]) -> None:
    if attempt.cancelled() or attempt.exception() is not None:
        return
    if isinstance(result := attempt.result(), ClientConnection):
        abort(result)
