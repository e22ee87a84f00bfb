"""Observers of what sockets do: the hooks that metrics and tracing hang on.

The core reports a few events (a socket opened or closed, a frame in, a
frame written, an RPC call or an invocation finished, a registry error, a
heartbeat of the node) to
:data:`hub`, the process's :class:`Hub`, **only when one is installed**::

    if observe.hub is not None: observe.hub.frame_sent(self.handler)

so that with no observer every hook costs one module attribute check, and
nothing of Prometheus or OpenTelemetry is imported. :func:`add` installs an
:class:`Observer` (``wsmanager.ops.metrics.install()`` and
``wsmanager.ops.tracing.install()`` call it); :func:`remove` takes it out again,
and the hub goes back to ``None`` with the last one.

Guarantees: each observer sees every event reported after its ``add``, in
the order the core reports them, on the event loop, in the task that
reported it (a call's worker task; for a frame written at once, the
sender's task). ``rpc_started``/``rpc_finished`` (and the invoke and
handshake pairs) come in pairs, in the same task, around the awaited work,
so that a tracing observer's current span is the call's while it runs. An observer that raises
breaks the socket's frame or call that reported it: observers must not
raise. Non-guarantees: events before ``add`` are not replayed; counters
(:mod:`wsmanager.observe._counters`) are not events: read them with
``counters.stats()`` when you need them (the metrics collector does, at
scrape time).

The outcome of a call is told by :func:`error_code`: the JSON-RPC error code
the client gets for the exception the method raised (None for a result).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol, TypeVar

from wsmanager_client import protocol

from ..exceptions import DeliveryError, RegistryUnavailable, RpcError

__all__ = ["Hub", "Observer", "Socket", "add", "error_code", "hub", "observers", "remove"]

T = TypeVar("T")

#: The error code of a call cancelled before it answered (its socket closed).
CANCELLED = 0


class Socket(Protocol):
    """What an observer may read of a socket (a handler)."""

    handler_name: str
    id: str
    scope: Mapping[str, Any]

    @property
    def settled(self) -> bool:
        """True once the handshake accepted the socket (it is OPEN)."""


class Observer:
    """Base class: every method does nothing; override the ones you need.

    ``*_started`` methods return a token (anything) that the matching
    ``*_finished`` call gets back.
    """

    def connection_opened(self, handler: str) -> None:
        """A socket of ``handler`` completed its handshake (it is OPEN)."""

    def connection_closed(self, handler: str, code: int) -> None:
        """An OPEN socket closed: by the server with ``code``, or by the client with its code."""

    def frame_received(self, handler: str) -> None:
        """A frame arrived on a socket of ``handler`` (before any limit applies)."""

    def frame_sent(self, handler: str) -> None:
        """A frame was written to a socket of ``handler`` (the server's ``send`` returned)."""

    def registry_error(self, operation: str) -> None:
        """A registry ``operation`` (``add``, ``remove``, ...) failed: the store was unreachable."""

    def heartbeat(self) -> None:
        """The node's heartbeat beat (twice per ``HEARTBEAT_INTERVAL``, in a process that
        holds or held a socket): a place for periodic work that must not cost per frame."""

    def handshake_started(self, sock: Socket) -> Any:
        """A handshake begins (before admission)."""

    def handshake_finished(self, sock: Socket, token: Any, accepted: bool) -> None:
        """The handshake ended: accepted (OPEN) or refused."""

    def rpc_started(self, sock: Socket, method: str) -> Any:
        """A client's call of ``method`` starts running (``method`` is the raw name asked for)."""

    def rpc_finished(self, sock: Socket, method: str, token: Any, seconds: float, code: int | None) -> None:
        """The call ended after ``seconds``: ``code`` None for a result, else its error code
        (:data:`CANCELLED` when the socket closed first)."""

    def invoke_started(self, sock: Socket, method: str) -> Any:
        """A server-to-client call of ``method`` starts."""

    def invoke_finished(
        self, sock: Socket, method: str, token: Any, seconds: float, error: BaseException | None
    ) -> None:
        """The invocation ended after ``seconds``; ``error`` is what it raised, if anything."""


def error_code(exc: BaseException) -> int:
    """The JSON-RPC error code a call that raised ``exc`` is answered with (see
    :mod:`wsmanager.jsonrpc`). An exception of a layer above that answers with
    a code of its own says so in an ``int`` class attribute ``jsonrpc_code``
    (the params check's ``BadParams``: -32602), so that this module imports
    nothing from those layers."""
    if isinstance(exc, RpcError):
        return exc.code
    declared = getattr(exc, "jsonrpc_code", None)
    if isinstance(declared, int):
        return declared
    if isinstance(exc, RegistryUnavailable | DeliveryError):
        return protocol.UNAVAILABLE
    if isinstance(exc, asyncio.CancelledError):
        return CANCELLED
    return protocol.INTERNAL_ERROR


class Hub:
    """Hands each event to every installed observer, in the order they were added."""

    __slots__ = ("observers",)

    def __init__(self, observers: tuple[Observer, ...]) -> None:
        self.observers = observers

    def connection_opened(self, handler: str) -> None:
        for o in self.observers:
            o.connection_opened(handler)

    def connection_closed(self, handler: str, code: int | None) -> None:
        for o in self.observers:
            o.connection_closed(handler, 1005 if code is None else int(code))

    def frame_received(self, handler: str) -> None:
        for o in self.observers:
            o.frame_received(handler)

    def frame_sent(self, handler: str) -> None:
        for o in self.observers:
            o.frame_sent(handler)

    def registry_error(self, operation: str) -> None:
        for o in self.observers:
            o.registry_error(operation)

    def heartbeat(self) -> None:
        for o in self.observers:
            o.heartbeat()

    async def handshake(self, sock: Socket, run: Awaitable[None]) -> None:
        """Await the handshake ``run``; accepted when the socket is settled afterwards."""
        tokens = [o.handshake_started(sock) for o in self.observers]
        accepted = False
        try:
            await run
            accepted = sock.settled
        finally:
            for o, token in zip(reversed(self.observers), reversed(tokens), strict=True):
                o.handshake_finished(sock, token, accepted)

    async def rpc(self, sock: Socket, method: str, call: Awaitable[T]) -> T:
        """Await a client's call of ``method``, reporting its start, duration and outcome."""
        tokens = [o.rpc_started(sock, method) for o in self.observers]
        started = time.perf_counter()
        code: int | None = None
        try:
            return await call
        except BaseException as exc:
            code = error_code(exc)
            raise
        finally:
            seconds = time.perf_counter() - started
            for o, token in zip(reversed(self.observers), reversed(tokens), strict=True):
                o.rpc_finished(sock, method, token, seconds, code)

    async def invoke(self, sock: Socket, method: str, call: Awaitable[T]) -> T:
        """Await a server-to-client call of ``method``, reporting its duration and outcome."""
        tokens = [o.invoke_started(sock, method) for o in self.observers]
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await call
        except BaseException as exc:
            error = exc
            raise
        finally:
            seconds = time.perf_counter() - started
            for o, token in zip(reversed(self.observers), reversed(tokens), strict=True):
                o.invoke_finished(sock, method, token, seconds, error)


#: The process's hub; None while no observer is installed (the hot path checks only this).
hub: Hub | None = None


def observers() -> tuple[Observer, ...]:
    """The installed observers, in order."""
    return () if hub is None else hub.observers


def add(observer: Observer) -> None:
    """Install ``observer`` (once: adding it again does nothing)."""
    global hub
    current = observers()
    if observer not in current:
        hub = Hub((*current, observer))


def remove(observer: Observer) -> None:
    """Uninstall ``observer``; the hub is None again when none is left."""
    global hub
    left = tuple(o for o in observers() if o is not observer)
    hub = Hub(left) if left else None
