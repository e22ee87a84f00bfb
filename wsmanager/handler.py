"""``WebSocketHandler``: a Channels consumer that the registry knows about.

Subclass it and override the hooks you need::

    class EchoHandler(WebSocketHandler):
        async def on_receive(self, message: str | bytes) -> None:
            await self.send_frame(message)

Life cycle (an explicit :class:`State`): CONNECTING → OPEN → CLOSING → CLOSED.

* Admission (:mod:`wsmanager.admission`), before anything is registered:
  the Origin check, ``require_authenticated`` and :meth:`authorize`; a
  refusal answers HTTP 403. Over ``max_connections_per_user`` the socket is
  accepted and closed with 4429.
* The socket gets :attr:`id` and is in the registry (and reachable through
  ``Handler.manager``) **before** ``on_connect`` runs, so the hook can join
  groups and send; frames sent before the handshake completes are queued and
  written right after it.
* ``on_connect`` returning ``False`` or raising :class:`RejectConnection`
  refuses the socket; any other exception refuses it too and is logged. A
  refused socket leaves nothing in the registry.
* ``on_receive`` gets ``str`` for text frames and ``bytes`` for binary ones.
  An exception in it goes to :meth:`on_error`, which logs it and closes the
  socket with 1011 by default (override it to keep the socket open).
* ``on_disconnect(code)`` runs after the socket has left the registry and
  all its groups; :attr:`info` still holds its last registry entry.

Incoming limits: frames over ``max_message_size`` close with 1009; frames
over ``rate_limit`` go to :meth:`on_rate_limited` and, persisting, close
with 1008. See docs/security.md.

Outgoing frames from every source (this handler, other handlers, views, other
processes) go through one per-socket queue: they are written one at a time,
in the order they were queued, never concurrently. Frames for a closing or
closed socket are dropped and counted in ``get_node().stats``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from . import admission, db, presence
from .conf import get_settings
from .exceptions import ConfigurationError, RegistryUnavailable, RejectConnection
from .limits import TokenBucket, too_big
from .node import Message, frame, get_node
from .registry import ConnectionInfo, get_registry
from .servers import send_backlog_probe, send_close_frame
from .upkeep import cancel_requested

if TYPE_CHECKING:
    from .sending import Manager

__all__ = ["CloseCode", "State", "WebSocketHandler", "handler_class", "new_socket_id"]

logger = logging.getLogger("wsmanager.handler")


class State(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class CloseCode(enum.IntEnum):
    """Close codes the library uses (see docs/protocol.md)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    #: Application range 4400-4499: the client must not reconnect by itself.
    FORBIDDEN = 4403
    TOO_MANY_CONNECTIONS = 4429


def new_socket_id() -> str:
    """A fresh socket id: 256 random bits, URL-safe base64 (43 characters).

    Never starts with ``-``, so that an id is never taken for an option on a
    command line (redrawn, 1 time in 64).
    """
    while True:
        sid = secrets.token_urlsafe(32)
        if sid[0] != "-":
            return sid


_handlers: dict[str, type[WebSocketHandler]] = {}


def handler_class(name: str) -> type[WebSocketHandler]:
    """The handler class registered under ``name`` (its ``name`` attribute)."""
    try:
        return _handlers[name]
    except KeyError:
        known = ", ".join(sorted(_handlers)) or "none"
        raise ConfigurationError(f"no handler is named {name!r} (known: {known})") from None


class WebSocketHandler(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Base class of every wsmanager handler. See the module docstring."""

    #: Registry namespace; defaults to "module.QualName". Two classes with
    #: the same name share one namespace (e.g. one handler on two routes).
    name: ClassVar[str] = "wsmanager.handler.WebSocketHandler"
    #: Query and send to this handler's sockets from anywhere.
    manager: ClassVar[Manager]
    #: Largest accepted incoming frame in bytes (text is measured as UTF-8
    #: upper bound len*4 only when needed); larger closes with 1009. None: no limit.
    max_message_size: ClassVar[int | None] = 1024 * 1024
    #: Origin patterns allowed to connect (see wsmanager.origin); None:
    #: ``WSMANAGER["ALLOWED_ORIGINS"]``, else the site's ALLOWED_HOSTS.
    allowed_origins: ClassVar[Sequence[str] | None] = None
    #: Refuse anonymous users before the handshake completes (HTTP 403).
    require_authenticated: ClassVar[bool] = False
    #: Sockets one user may hold open at once in this handler (all
    #: processes); the next one is accepted and closed with 4429. None: no limit.
    max_connections_per_user: ClassVar[int | None] = None
    #: Incoming messages per second and burst size (token bucket); messages
    #: over it are refused (RPC: -32002) and counted. None: no limit.
    rate_limit: ClassVar[tuple[float, float] | None] = (100.0, 200.0)
    #: Refused messages in a row after which the socket is closed with 1008.
    rate_limit_strikes: ClassVar[int] = 50
    #: Bytes the client may leave unread in the server's send buffer before
    #: the socket is closed with 1013 and further frames dropped (daphne only;
    #: see wsmanager.limits). None: no limit.
    max_send_backlog: ClassVar[int | None] = 8 * 1024 * 1024

    #: True on base classes meant for subclassing (not listed by name).
    abstract: ClassVar[bool] = True

    id: str
    state: State
    info: ConnectionInfo

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        from .sending import get_manager

        if "name" not in cls.__dict__:
            cls.name = f"{cls.__module__}.{cls.__qualname__}"
        cls.manager = get_manager(cls.name)
        if not cls.__dict__.get("abstract", False):
            _handlers[cls.name] = cls

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """``kwargs`` (from ``route(..., **kwargs)`` / ``as_asgi``) override class attributes."""
        for key, value in kwargs.items():
            if key.startswith("_") or not hasattr(type(self), key):
                raise TypeError(f"{type(self).__name__} has no attribute {key!r} to set per route")
            setattr(self, key, value)
        super().__init__(*args)
        self._receive_task: asyncio.Task[Any] | None = None
        self.id = ""
        self.state = State.CONNECTING
        self._queue: deque[Message] | None = None
        self._writing = False
        self._released = False
        self._opened = False
        self._disconnect_seen = False
        self._bucket = TokenBucket(*self.rate_limit) if self.rate_limit else None
        self._strikes = 0
        self._backlog: Any = None

    # -- hooks ---------------------------------------------------------------
    async def authorize(self) -> bool:
        """May this client connect at all? Runs before the socket is registered.

        Override for checks on ``self.scope`` (user, path kwargs, headers);
        False refuses the handshake with HTTP 403. Exceptions refuse too.
        """
        return True

    async def on_connect(self) -> bool | None:
        """Decide whether to accept; return False (or raise RejectConnection) to refuse."""
        return None

    async def on_rate_limited(self, message: str | bytes) -> None:
        """A message over :attr:`rate_limit` was dropped (RPC handlers answer -32002)."""

    async def on_open(self) -> None:
        """Runs right after the handshake, before queued frames are written."""

    async def on_receive(self, message: str | bytes) -> None:
        """A frame arrived: ``str`` for text, ``bytes`` for binary."""

    async def on_disconnect(self, code: int) -> None:
        """The socket closed with ``code`` and has left the registry."""

    async def on_error(self, exc: Exception) -> None:
        """``on_receive`` raised: log it and close with 1011 (override to keep open)."""
        logger.error("handler %s socket %s failed", self.name, self.id, exc_info=exc)
        await self.close(CloseCode.INTERNAL_ERROR)

    # -- sending ---------------------------------------------------------------
    async def send_frame(self, data: str | bytes) -> bool:
        """Queue a text (str) or binary (bytes) frame to this socket; False if it is closed."""
        return await self.push(frame(data))

    async def send(  # channels' signature, kept for compatibility
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        if text_data is not None:
            await self.send_frame(text_data)
        elif bytes_data is not None:
            await self.send_frame(bytes_data)
        else:
            raise ValueError("send() needs text_data or bytes_data")
        if close:
            await self.close()

    async def push(self, message: Message) -> bool:
        """Queue an ASGI message; written in order, one at a time. False if dropped."""
        if self.state in (State.CLOSING, State.CLOSED):
            get_node().stats["dropped_closed"] += 1
            return False
        if self.state is State.CONNECTING or self._writing:
            return self._queue_frame(message)
        limit = self.max_send_backlog
        if limit is not None and self._backlog is not None and self._backlog() > limit:
            get_node().stats["dropped_slow_client"] += 1
            logger.warning(
                "socket %s: client reads too slowly (backlog over %d B); closing 1013", self.id, limit
            )
            await self.close(CloseCode.TRY_AGAIN_LATER, "too slow")
            return False
        self._writing = True
        try:
            await self.base_send(message)
            await self._drain()
        except Exception as exc:
            logger.info("socket %s: write failed (%r); closing", self.id, exc)
            self.state = State.CLOSING
            return False
        finally:
            self._writing = False
        return True

    def _queue_frame(self, message: Message) -> bool:
        if self._queue is None:
            self._queue = deque()
        if len(self._queue) >= get_settings().max_outgoing_queue:
            get_node().stats["dropped_overflow"] += 1
            logger.warning("socket %s: outgoing queue full; closing with 1013", self.id)
            asyncio.get_running_loop().create_task(self.close(CloseCode.TRY_AGAIN_LATER, "too slow"))
            return False
        self._queue.append(message)
        return True

    async def _drain(self) -> None:
        queue = self._queue
        while queue and self.state is State.OPEN:
            await self.base_send(queue.popleft())

    @property
    def settled(self) -> bool:
        """True once the handshake is over: registered, ``on_connect`` done, open."""
        return self._opened and self.state is State.OPEN

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        """Complete the handshake (done for you unless ``on_connect`` refuses)."""
        if self.state is not State.CONNECTING:
            return
        await super().accept(subprotocol, headers)
        self.state = State.OPEN
        self._opened = True
        self._backlog = send_backlog_probe(self.base_send)
        await self.on_open()
        if self._queue and not self._writing:
            self._writing = True
            try:
                await self._drain()
            finally:
                self._writing = False

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close from the server side; the socket leaves the registry at once."""
        if self.state in (State.CLOSING, State.CLOSED):
            return
        if self.state is State.CONNECTING:
            await self._refuse(code, reason or "")
            return
        if self._queue and not self._writing:
            await self._drain()
        self.state = State.CLOSING
        try:
            await self._send_close(code, reason)
        finally:
            await self._release()

    async def _send_close(self, code: int | None, reason: str | None) -> None:
        """Send the close; never raises (the socket is released whatever happens).

        Codes go out as plain ints (autobahn refuses an IntEnum). daphne
        refuses codes other than 1000 and 3000-4999 through ASGI, and drops
        the reason of every ASGI close; such closes are written on its
        protocol directly (see wsmanager.limits), so the client sees both.
        """
        code = None if code is None else int(code)
        try:
            if code is not None and reason and send_close_frame(self.base_send, code, reason):
                return
            await super().close(code, reason)
        except Exception as exc:
            try:
                written = code is not None and send_close_frame(self.base_send, code, reason)
            except Exception:
                written = False
            if not written:
                logger.warning("socket %s: close %s could not be sent (%r)", self.id, code, exc)

    # -- group shortcuts -------------------------------------------------------------
    async def join(self, group: str) -> None:
        """Add this socket to ``group`` (it leaves it automatically when it closes)."""
        await self.manager.aadd_to_group(self.id, group)

    async def leave(self, group: str) -> None:
        """Remove this socket from ``group``; no-op if it was not a member."""
        await self.manager.aremove_from_group(self.id, group)

    # -- channels plumbing -------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve one socket. Unlike a plain consumer, no per-socket channel is
        created: wsmanager delivers through the process's node channel."""
        self.scope = scope
        self.channel_layer = None
        self.channel_name = None
        self.base_send = send
        self._receive_task = asyncio.current_task()
        try:
            while not cancel_requested():  # a cancel lost in a library still stops us
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            if self.id and not self._disconnect_seen:
                # Cancelled (server shutdown) or crashed: clean up all the same.
                # Awaiting in ``finally`` after a cancellation is allowed; daphne
                # waits for its cancelled applications before it exits.
                await self._finish(CloseCode.GOING_AWAY)

    async def dispatch(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "websocket.receive":
            await db.close_old_connections_if_used()
            await self.websocket_receive(message)
        elif kind == "websocket.connect":
            await db.close_old_connections_if_used()
            await self.websocket_connect(message)
        elif kind == "websocket.disconnect":
            await self.websocket_disconnect(message)
        else:
            raise ValueError(f"no handler for message type {kind!r}")

    def origin_ok(self) -> bool:
        """Whether the handshake's Origin is allowed (see :mod:`wsmanager.admission`)."""
        return admission.origin_ok(self)

    async def websocket_connect(self, message: Message) -> None:
        if not await admission.admitted(self):
            get_node().stats["refused_handshake"] += 1
            self.state = State.CLOSED
            await super().close()
            return
        node = get_node()
        self.id = new_socket_id()
        route = self.scope.get("url_route") or {}
        self.info = ConnectionInfo(
            id=self.id,
            handler=self.name,
            node=await node.start(),
            user_id=admission.user_id_of(self.scope),
            connected_at=time.time(),
            path_kwargs=dict(route.get("kwargs") or {}),
        )
        node.attach(self)
        try:
            await get_registry().add(self.info)
            if await admission.over_user_limit(self):
                await self._refuse(CloseCode.TOO_MANY_CONNECTIONS, "too many connections")
                return
        except RegistryUnavailable as exc:
            logger.warning("refusing socket: registry unavailable (%s)", exc)
            await self._refuse(None, "")
            return
        try:
            verdict = await self.on_connect()
        except RejectConnection as exc:
            await self._refuse(exc.code, exc.reason)
            return
        except Exception:
            logger.exception("on_connect of %s raised; socket refused", self.name)
            await self._refuse(None, "")
            return
        if verdict is False:
            await self._refuse(None, "")
        else:
            await self.accept()

    async def _refuse(self, code: int | None, reason: str) -> None:
        get_node().stats["refused_handshake"] += 1
        self.state = State.CLOSING
        if code is None:
            await super().close()  # before accept: the handshake is refused (HTTP 403)
        else:
            await super().accept()
            await self._send_close(code, reason or None)
        await self._release()

    async def websocket_receive(self, message: Message) -> None:
        if self.state is not State.OPEN:  # closing: what the client still sends is dropped
            get_node().stats["dropped_incoming"] += 1
            return
        text = message.get("text")
        data: str | bytes = text if text is not None else (message.get("bytes") or b"")
        if too_big(data, self.max_message_size):
            get_node().stats["refused_too_big"] += 1
            logger.info("socket %s: frame over %s bytes; closing 1009", self.id, self.max_message_size)
            await self.close(CloseCode.MESSAGE_TOO_BIG, "message too big")
            return
        if self._bucket is not None and not self._bucket.take():
            get_node().stats["rate_limited"] += 1
            self._strikes += 1
            if self._strikes >= self.rate_limit_strikes:
                logger.info(
                    "socket %s: over its rate limit %d times in a row; closing 1008", self.id, self._strikes
                )
                await self.close(CloseCode.POLICY_VIOLATION, "rate limit exceeded")
            else:
                await self.on_rate_limited(data)
            return
        self._strikes = 0
        try:
            await self.on_receive(data)
        except Exception as exc:
            await self.on_error(exc)

    async def websocket_disconnect(self, message: Message) -> None:
        await self._finish(int(message.get("code", 1005)))
        raise StopConsumer()

    async def _finish(self, code: int) -> None:
        """The socket is gone: release it, then run ``on_disconnect`` once if it was open."""
        self._disconnect_seen = True
        await self._release(code)
        if self._opened:
            try:
                await self.on_disconnect(code)
            except Exception:
                logger.exception("on_disconnect of %s raised", self.name)

    async def _release(self, code: int | None = None) -> None:
        """Leave the registry, the node and every group; idempotent."""
        self.state = State.CLOSED
        if self._released:
            return
        self._released = True
        self._queue = None
        node = get_node()
        node.detach(self.id)
        try:
            removed = await get_registry().remove(self.name, self.id)
        except RegistryUnavailable as exc:
            logger.warning("socket %s: registry removal failed (%s); will retry", self.id, exc)
            node.remember_orphan(self.name, self.id)
            removed = None
        if removed is not None:
            self.info = removed
        await presence.announce_departure(self.name, removed)
        await self.on_released(code)

    async def on_released(self, code: int | None) -> None:
        """Internal hook for subclasses (the RPC layer fails pending calls here)."""
