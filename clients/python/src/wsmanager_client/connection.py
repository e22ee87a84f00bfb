"""The Python client: one ``websockets`` connection at a time, kept up by itself.

:class:`Client` is the Python twin of the browser client (docs/client.md):
the same protocol, states, close-code policy, backoff, queueing and
heartbeat, with times in seconds. The rules live in the sans-I/O modules
beside this one (:mod:`.policy`, :mod:`.calls`, :mod:`.serving`); the
connection loop that moves frames lives in :mod:`.session` (the base class
:class:`~.session.Session`); this one is the public surface: connecting,
closing, calls, notifications and handlers.

Guarantees:

* ``await client.invoke()`` returns exactly once: the result, or
  :class:`RemoteError`, :class:`InvokeTimeout`, :class:`ConnectionClosed`
  (in flight when the connection dropped) or :class:`NotConnected` (never
  sent). Nothing is retried for you.
* Calls and notifications made while not connected wait in order (up to
  ``queue_size``) and go out first when a socket opens; a queued call never
  waits longer than its timeout.
* Answers to the server's calls go out only on the socket the call came in on.
* The heartbeat (``rpc.ping`` every ``heartbeat_interval``) drops a
  connection whose server sends nothing at all within ``heartbeat_timeout``.
* What the server sends is bounded (``max_message_size``, ``max_batch_size``,
  ``max_concurrent_handlers``: :mod:`.limits`); what goes over a bound is
  counted in :attr:`Client.stats` and reported to ``on_error``.
* ``async for item in client.stream(method, ...)`` gets a streaming method's
  items in order, each once, granting the server credit as it consumes them
  (:mod:`.streams`); breaking out, closing it or cancelling the task ends
  the stream on the server too (``rpc.cancel``).
* ``await client.subscribe(topic, on_publication)`` returns once the server
  accepted, or raises :class:`RemoteError` with the refusal's code; the
  subscription is renewed from its position after every reconnection, and
  its publications reach ``on_publication`` once and in order (:mod:`.topics`).

Non-guarantees: no exactly-once delivery (except for the notifications a
server with connection recovery replays after a resumed drop), no ordering
across reconnections, no backpressure on what the client sends beyond
``websockets``' own write buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections.abc import AsyncIterable, AsyncIterator, Callable, Generator, Iterable, Mapping, Sequence
from typing import Any

from .calls import Call
from .events import Closed
from .exceptions import NotConnected
from .limits import Stats
from .policy import NORMAL, State
from .serving import Handler
from .session import Session
from .streams import CANCEL, CREDIT, END, ITEM, Inbound, Outbound
from .topics import (
    ErrorCallback,
    Position,
    PublicationCallback,
    Subscription,
    UnrecoveredCallback,
    parse_position,
)
from .transport import CLOSE_TIMEOUT, ClientConnection, WsConnectionClosed, abort, is_open

__all__ = ["Client", "connect"]


class Client(Session):
    """A JSON-RPC 2.0 peer over one WebSocket that reconnects by itself (see :func:`connect`).

    The constructor's keywords and the connection loop are :class:`~.session.Session`'s.
    """

    # --- properties -------------------------------------------------------------
    @property
    def id(self) -> str | None:
        """The socket id of the current connection (from ``rpc.connected``), ``None`` while not connected."""
        return self._id

    @property
    def state(self) -> State:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state is State.OPEN

    @property
    def queued(self) -> int:
        """How many calls and notifications wait for a connection."""
        return self._calls.queued

    @property
    def stats(self) -> Stats:
        """A copy of the counts, over the client's life, of what it refused, dropped or paused
        for (:class:`~.limits.Stats`; the limits are in :mod:`.limits`)."""
        return dataclasses.replace(self._stats)

    # --- lifecycle --------------------------------------------------------------
    async def connect(self) -> str | None:
        """Connect (and stay connected); return the socket id at the next ``rpc.connected``.

        Raises :class:`NotConnected` (``reason="closed"``, the last failure as
        its ``__cause__``) when the client closes or gives up first. While
        connecting or open it only waits.
        """
        if self._state is State.OPEN and self._id is not None:
            return self._id
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
            self._ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        ready = self._ready
        if self._state in (State.IDLE, State.CLOSED):
            self._attempt, self._connected_before, self._previous_id = 0, False, None
            self._recovery.reset()
            self._runner = asyncio.create_task(self._run(), name="wsmanager_client")
        return await asyncio.shield(ready)

    async def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Close for good: calls in flight fail with ConnectionClosed, queued ones with NotConnected.

        On an open socket the client first says ``rpc.close`` (with ``code``), then
        closes: the server releases the session at once and for good (it is never
        kept for connection recovery), whatever close code the server itself
        reports (hypercorn reports 1006 for every close; docs/protocol.md).
        """
        if self._state in (State.IDLE, State.CLOSED):
            self._finish(code, reason)
            return
        ws, runner = self._ws, self._runner
        self._ws = self._runner = None
        self._calls.fail_in_flight(code)
        self._finish(code, reason)
        self._recovery.reset()  # the client's own close: never resumed
        current = asyncio.current_task()
        if runner is not None and runner is not current:
            runner.cancel()
            await asyncio.wait([runner])
        if ws is not None:
            await self._say_close(ws, code)
            try:
                await ws.close(code, reason)
            except Exception:  # e.g. a code a client may not send: drop the connection instead
                abort(ws)
        self._background.cancel_all(but=current)
        self._emit(self.on_closed, Closed(code, reason, True, False))

    async def _say_close(self, ws: ClientConnection, code: int) -> None:
        """``rpc.close`` on ``ws`` if it is open: the code when it is one a client may
        choose other than 1000 (3000-4999); bounded like the closing handshake."""
        if not is_open(ws):
            return
        note = self._calls.new_note("rpc.close", {"code": code} if 3000 <= code <= 4999 else None)
        with contextlib.suppress(Exception):  # closing anyway: the close frame follows
            await asyncio.wait_for(ws.send(note.text), CLOSE_TIMEOUT)

    async def __aenter__(self) -> Client:
        try:
            await self.connect()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- calls --------------------------------------------------------------------
    async def invoke(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call a server method: positional params from ``args``, named ones from ``kwargs`` (not both).

        ``timeout`` in seconds overrides the client's (``math.inf``: none).
        """
        if args and kwargs:
            raise TypeError("JSON-RPC params are positional or named, not both")
        return await self.invoke_with(method, kwargs or list(args), timeout=timeout)

    async def invoke_with(
        self,
        method: str,
        params: Sequence[Any] | dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        queue: bool | None = None,
    ) -> Any:
        """:meth:`invoke` with explicit params (``None``: the member is left out) and per-call options.

        ``queue=False`` fails at once with ``NotConnected("not-queued")``
        while not connected instead of waiting (default: ``queue_calls``).
        """
        queueable = self.options.queue_calls if queue is None else queue
        return await self._call(method, params, self._timeout(timeout), queueable)

    async def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Send a notification (never answered).

        Queued while not connected; raises :class:`NotConnected` when it can be
        neither sent nor queued.
        """
        if args and kwargs:
            raise TypeError("JSON-RPC params are positional or named, not both")
        note = self._calls.new_note(method, kwargs or list(args))
        ws = self._sendable()
        if ws is not None:
            with contextlib.suppress(WsConnectionClosed):  # dropping now: it may be lost, as in the browser
                await ws.send(note.text)
            return
        reason = self._calls.refusal(closed=self._state is State.CLOSED, fail_fast=self.options.fail_fast)
        if reason is not None:
            raise NotConnected(self._calls.socket_id, method, reason)
        self._calls.enqueue(note)

    async def stream(self, method: str, *args: Any, window: int = 64, **kwargs: Any) -> AsyncIterator[Any]:
        """Call a streaming method and iterate over its items (docs/protocol.md, section 14).

        ``async for item in client.stream("count", 10): ...`` yields the items
        in order, each once, and ends when the server's generator returned.
        ``window``: how many items the server may send ahead of what was
        consumed (capped by the handler's ``max_stream_credit``); credit is
        granted back half a window at a time, as items are consumed, so a
        consumer that stops holds at most ``window`` items here.

        Ending early: ``break`` (the generator is closed when it is collected;
        use ``contextlib.aclosing`` to close it at once), ``aclose()`` or
        cancelling the consuming task sends ``rpc.cancel``, and the server
        closes its generator.

        Raises :class:`RemoteError` (the generator raised, or the call was
        refused: -32020 too many streams, -32601, -32602, ...),
        :class:`ConnectionClosed` (the connection dropped: a stream is not
        resumed), :class:`NotConnected` when not connected (streams are never
        queued), ``TypeError`` for params both positional and named,
        ``ValueError`` for a bad ``window``.
        """
        if args and kwargs:
            raise TypeError("JSON-RPC params are positional or named, not both")
        inbound = Inbound(window)
        ws = self._sendable()
        if ws is None:
            reason = "closed" if self._state is State.CLOSED else "not-queued"
            raise NotConnected(self._calls.socket_id, method, reason)
        call = self._calls.new_call(method, kwargs or list(args), None)
        self._streams[call.id] = inbound
        call.future.add_done_callback(lambda _: inbound.end())
        self._calls.sent(call)
        try:
            with contextlib.suppress(WsConnectionClosed):  # the loss fails the call
                await ws.send(call.text)
            while True:
                more, item, grant = await inbound.next()
                if not more:
                    break
                if grant:
                    await self._stream_word(ws, CREDIT, {"id": call.id, "n": grant})
                yield item
            call.future.result()  # raises the error that ended the stream
        finally:
            self._streams.pop(call.id, None)
            if not call.future.done():  # ended early: the server stops too
                self._calls.discard(call)
                await self._stream_word(ws, CANCEL, {"id": call.id})

    async def upload(
        self, method: str, items: AsyncIterable[Any] | Iterable[Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Call a method that reads an upload (an ``AsyncIterator`` param) and send it ``items``.

        ``args`` / ``kwargs`` are the method's other params. Each item is sent
        as the server grants credit (``rpc.stream.credit``), then
        ``rpc.stream.end``; returns the method's result, which may come before
        every item was sent (the rest is not sent). Cancelling the task sends
        ``rpc.cancel``. Raises as :meth:`stream` does (never queued).
        """
        if args and kwargs:
            raise TypeError("JSON-RPC params are positional or named, not both")
        ws = self._sendable()
        if ws is None:
            reason = "closed" if self._state is State.CLOSED else "not-queued"
            raise NotConnected(self._calls.socket_id, method, reason)
        call = self._calls.new_call(method, kwargs or list(args), None)
        outbound = Outbound()
        self._uploads[call.id] = outbound
        call.future.add_done_callback(lambda _: outbound.end())
        self._calls.sent(call)
        sender: asyncio.Task[None] | None = None
        try:
            with contextlib.suppress(WsConnectionClosed):
                await ws.send(call.text)
            sender = asyncio.ensure_future(self._send_upload(ws, call, items, outbound))
            return await call.future
        finally:
            self._uploads.pop(call.id, None)
            if sender is not None:
                sender.cancel()
            if not call.future.done():  # cancelled: the server stops reading too
                self._calls.discard(call)
                await self._stream_word(ws, CANCEL, {"id": call.id})

    async def _send_upload(
        self,
        ws: ClientConnection,
        call: Call,
        items: AsyncIterable[Any] | Iterable[Any],
        outbound: Outbound,
    ) -> None:
        """Send ``items`` as credit comes; an item that fails (not JSON, or the iterable
        raised) fails the call with that exception, and ``rpc.cancel`` tells the server, whose
        method would otherwise wait for the next item, holding up the socket's calls."""
        try:
            await self._send_items(ws, call.id, items, outbound)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not call.future.done():
                await self._stream_word(ws, CANCEL, {"id": call.id})
            self._calls.settle(call, exc=exc)

    async def _send_items(
        self,
        ws: ClientConnection,
        call_id: int,
        items: AsyncIterable[Any] | Iterable[Any],
        outbound: Outbound,
    ) -> None:
        if isinstance(items, AsyncIterable):
            async for item in items:
                if not await outbound.spend():
                    return
                await self._stream_word(ws, ITEM, {"id": call_id, "item": item})
        else:
            for item in items:
                if not await outbound.spend():
                    return
                await self._stream_word(ws, ITEM, {"id": call_id, "item": item})
        if not outbound.ended:
            await self._stream_word(ws, END, {"id": call_id})

    async def _stream_word(self, ws: ClientConnection, method: str, params: dict[str, Any]) -> None:
        """``rpc.stream.credit`` or ``rpc.cancel`` on the stream's own socket (none once it is gone)."""
        if ws is self._ws and is_open(ws):
            with contextlib.suppress(WsConnectionClosed):
                await ws.send(self._calls.new_note(method, params).text)

    def on(self, method: str, fn: Handler | None) -> Callable[[], None]:
        """Serve ``method`` for the server's calls and notifications (rules in :mod:`.serving`).

        Returns a function that removes this handler.
        """
        return self._handlers.on(method, fn)

    def off(self, method: str) -> None:
        self._handlers.off(method)

    # --- topics -----------------------------------------------------------------------
    @property
    def subscriptions(self) -> dict[str, Subscription]:
        """The client's subscriptions by topic (a copy)."""
        return {subscription.topic: subscription for subscription in self._topics}

    async def subscribe(
        self,
        topic: str,
        on_publication: PublicationCallback,
        since: Position | Mapping[str, Any] | None = None,
        on_unrecovered: UnrecoveredCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> Subscription:
        """Subscribe to ``topic``; return the :class:`~.topics.Subscription` once the server accepted.

        ``on_publication(publication)`` (a function or a coroutine function) gets
        each :class:`~.topics.Publication` once and in offset order. ``since``
        (a :class:`~.topics.Position` or ``{"offset", "epoch"}``) is the
        position the caller's state is current as of: what was published after
        it is replayed when the server still has it; otherwise
        ``on_unrecovered`` gets an :class:`~.topics.Unrecovered` (refetch).
        After every reconnection the subscription is sent again from its
        position; a refusal then ends it and goes to ``on_error`` (default: the
        client's). Sent once connected: called before :meth:`connect`, it waits.

        Raises :class:`RemoteError` when the server refuses (``code`` -32010
        unknown topic, -32011 not authorized, -32012 too many subscriptions,
        -32602 bad params), :class:`InvokeTimeout`, :class:`NotConnected` when
        the client is or becomes closed first, ``ValueError`` when already
        subscribed to ``topic``, ``TypeError`` for bad arguments.
        """
        if not isinstance(topic, str) or not topic:
            raise TypeError("topic must be a non-empty string")
        if not callable(on_publication):
            raise TypeError("on_publication must be callable")
        position = None if since is None else parse_position(since)
        if since is not None and position is None:
            raise TypeError(
                f"since must be a Position or {{'offset': int >= 0, 'epoch': str}}, not {since!r}"
            )
        if self._state is State.CLOSED:
            raise NotConnected(self._calls.socket_id, "rpc.subscribe", "closed")
        subscription = Subscription(
            topic,
            on_publication,
            since=position,
            on_unrecovered=on_unrecovered,
            on_error=on_error,
            unsubscribe=self._unsubscribe,
        )
        self._topics.add(subscription)
        if self._greeted:
            self._send_subscribe(subscription)
        try:
            return await asyncio.shield(subscription.first)
        except asyncio.CancelledError:
            if not subscription.first.done() or subscription.first.cancelled():
                self._spawn(self._unsubscribe(subscription))  # the caller gave up: so does the server
            raise

    def _timeout(self, timeout: float | None) -> float | None:
        value = self.options.timeout if timeout is None else timeout
        if value is None or value == math.inf:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"timeout must be a positive number of seconds or math.inf, not {value!r}")
        return float(value)


class Connecting:
    """What :func:`connect` returns: await it, or use it as ``async with``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def _start(self) -> Client:
        try:
            await self.client.connect()
        except BaseException:
            await self.client.close()
            raise
        return self.client

    def __await__(self) -> Generator[Any, None, Client]:
        return self._start().__await__()

    async def __aenter__(self) -> Client:
        return await self._start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.close()


def connect(
    url: str | Callable[[], str],
    *,
    origin: str | None = None,
    headers: Mapping[str, str] | None = None,
    reconnect: bool = True,
    recover: bool = True,
    timeout: float | None = 30.0,
    **options: Any,
) -> Connecting:
    """Connect: ``client = await connect(url)`` or ``async with connect(url) as client:``.

    Both return once ``rpc.connected`` arrived (``client.id`` is set); they
    raise :class:`NotConnected` if the client gives up first (with
    ``reconnect=True`` and the default policy it keeps trying: bound the wait
    with ``asyncio.timeout``). ``recover=False`` never resumes a session,
    even when the server offers it. Every other option is a keyword of
    :class:`Client` (docs/python-client.md).
    """
    client = Client(
        url, origin=origin, headers=headers, reconnect=reconnect, recover=recover, timeout=timeout, **options
    )
    return Connecting(client)
