"""``WebSocketHandler``: a Channels consumer that the registry knows about.

Subclass it and override the hooks you need::

    class EchoHandler(WebSocketHandler):
        async def on_receive(self, message: str | bytes) -> None:
            await self.send_frame(message)

Life cycle (checked, see :mod:`wsmanager.connection._lifecycle`): CONNECTING → OPEN →
CLOSING → CLOSED.

* Admission (:mod:`wsmanager.connection._admission`), before anything is registered:
  the Origin check, ``require_authenticated`` and :meth:`authorize`; a
  refusal answers HTTP 403. Over ``max_connections_per_address`` or
  ``max_connections_per_user`` the socket is accepted and closed with 4429.
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
* ``on_disconnect(code)`` runs once, after the socket has left the registry
  and all its groups, if it was ever open; :attr:`info` still holds its last
  registry entry. ``code`` is the one the server reports for the client's
  close, or the one the client asked for with :meth:`close_on_request`
  (``rpc.close``), whatever the server then reports (hypercorn reports every
  client's close as 1006).

Incoming limits (:class:`wsmanager.connection._limits.Intake`): over ``max_message_size``
closes with 1009; over ``rate_limit`` goes to :meth:`on_rate_limited` and,
persisting, closes with 1008 (docs/security.md). Outgoing frames from every
source go through the socket's :class:`~wsmanager.connection._outbox.Outbox` and its one
writer (:mod:`wsmanager.connection._writer`): in order, a sender never waits for this
socket's transport; over ``max_send_backlog`` unwritten bytes it closes with
1013, a frame the server cannot write closes it with 1011. Frames for a
closing or closed socket are dropped, and counted (``counters``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from .. import _checks  # noqa: F401  (registers the system checks: any project with a handler gets them, "wsmanager" installed or not)
from .. import _db as db
from .. import _handler_classes as catalog
from .. import _presence as presence
from .._conf import get_settings
from .._manager import Manager, get_manager
from ..connection import _admission as admission
from ..connection._activity import Activity
from ..connection._addresses import client_address
from ..connection._lifecycle import CloseCode, Lifecycle, State, chosen_close_code, new_socket_id
from ..connection._limits import Intake, IntakeVerdict
from ..connection._outbox import Message, Outbox, frame
from ..connection._refusals import Refusal, log_refusal, send_refusal
from ..connection._writer import Writer
from ..exceptions import RegistryUnavailable, RejectConnection
from ..node._hub import Node, get_node
from ..observe import _hub as observe
from ..observe._counters import Count, bump
from ..registry import ConnectionInfo, get_registry
from ..servers import refuse_compression, send_close
from ._hooks import Hooks

__all__ = ["CloseCode", "State", "WebSocketHandler", "new_socket_id"]

logger = logging.getLogger(__name__)


def _too_many(detail: str) -> Refusal:
    return Refusal("too_many", "too many connections", code=CloseCode.TOO_MANY_CONNECTIONS, detail=detail)


class WebSocketHandler(Hooks, AsyncWebsocketConsumer):  # type: ignore[misc]
    """Base class of every wsmanager handler. See the module docstring."""

    #: Registry namespace; defaults to "module.QualName". Two classes with
    #: the same name share one namespace (e.g. one handler on two routes).
    handler_name: ClassVar[str] = "wsmanager.handlers._handler.WebSocketHandler"
    #: Query and send to this handler's sockets from anywhere.
    manager: ClassVar[Manager]
    #: Largest accepted incoming frame in bytes (text as UTF-8); larger closes with 1009.
    max_message_size: ClassVar[int | None] = 1024 * 1024
    #: Origin patterns allowed to connect (see wsmanager.connection._origin); None:
    #: ``WSMANAGER["ALLOWED_ORIGINS"]``, else the site's ALLOWED_HOSTS.
    allowed_origins: ClassVar[Sequence[str] | None] = None
    #: Refuse anonymous users before the handshake completes (HTTP 403).
    require_authenticated: ClassVar[bool] = False
    #: Sockets one user may hold open at once in this handler (all
    #: processes); the next one is accepted and closed with 4429. None: no limit.
    max_connections_per_user: ClassVar[int | None] = None
    #: Sockets one client address (wsmanager.connection._addresses) may hold in this handler
    #: and process; the next is closed with 4429, unregistered. None: no limit.
    max_connections_per_address: ClassVar[int | None] = 256
    #: Incoming messages per second and burst (token bucket); over it: refused, counted.
    rate_limit: ClassVar[tuple[float, float] | None] = (100.0, 200.0)
    #: Refused messages in a row after which the socket is closed with 1008.
    rate_limit_strikes: ClassVar[int] = 50
    #: Unwritten bytes for the client (on daphne, with its transport buffer)
    #: over which the socket is closed with 1013. None: no limit.
    max_send_backlog: ClassVar[int | None] = 256 * 1024
    #: False: the server negotiates no permessage-deflate for this handler's sockets, where
    #: memory per socket matters more than bytes (a compressed socket holds 50 to 300 KiB of
    #: zlib state: docs/compression.md). Refused in the handshake on uvicorn and hypercorn;
    #: daphne and granian never compress; another server is warned about, once.
    compression: ClassVar[bool] = True

    #: True on base classes meant for subclassing (not listed by name).
    abstract: ClassVar[bool] = True
    # What each instance binds (annotated here so that ``@rpc`` can refuse a method of
    # one of these names, which the instance attribute would hide: see
    # :func:`instance_attributes`).
    id: str
    info: ConnectionInfo
    lifecycle: Lifecycle
    activity: Activity
    writer: Writer
    intake: Intake
    scope: dict[str, Any]
    channel_layer: Any
    channel_name: str | None
    base_send: Any
    # From these values on the class until the socket sets its own (its ``__dict__`` then
    # holds only what it has set; see RpcHandler).
    _released: asyncio.Future[None] | None = None
    _sent_code: int | None = None  # the close code this side sent, if it closed
    _requested_code: int | None = None  # the client's, when it closed on purpose

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.handler_name = catalog.name_of(cls)
        cls.manager = get_manager(cls.handler_name)
        if not cls.__dict__.get("abstract", False):
            catalog.register(cls.handler_name, cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """``kwargs`` (from ``route(..., **kwargs)`` / ``as_asgi``) override class attributes."""
        for key, value in kwargs.items():
            if key.startswith("_") or not hasattr(type(self), key):
                raise TypeError(f"{type(self).__name__} has no attribute {key!r} to set per route")
            setattr(self, key, value)
        super().__init__(*args)
        self._receive_task: asyncio.Task[Any] | None = None
        self.id = ""
        self.lifecycle = Lifecycle()
        outbox = Outbox(self.max_send_backlog, get_settings().max_outgoing_queue)
        self.activity = Activity()
        self.writer = Writer(outbox, self.close, handler=self.handler_name, activity=self.activity)
        self.intake = Intake(self.max_message_size, self.rate_limit, self.rate_limit_strikes, self.activity)

    @property
    def state(self) -> State:
        """The socket's :class:`~wsmanager.connection._lifecycle.State`."""
        return self.lifecycle.state

    @property
    def settled(self) -> bool:
        """True once the handshake is over: registered, ``on_connect`` done, open."""
        return self.lifecycle.state is State.OPEN

    # -- sending ---------------------------------------------------------------
    async def send_frame(self, data: str | bytes) -> bool:
        """Queue a text (str) or binary (bytes) frame to this socket; False if dropped."""
        return await self.push(frame(data))

    async def send(  # channels' signature, kept for compatibility
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        data = text_data if text_data is not None else bytes_data
        if data is None:
            raise ValueError("send() needs text_data or bytes_data")
        await self.send_frame(data)
        if close:
            await self.close()

    async def push(self, message: Message) -> bool:
        """Queue an ASGI message for the client; False if dropped (and counted).
        Never waits for this socket's transport (see :mod:`wsmanager.connection._writer`)."""
        return self.writer.push(message)

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        """Complete the handshake (done for you unless ``on_connect`` refuses)."""
        if self.lifecycle.state is not State.CONNECTING:
            return
        if not self.compression:
            refuse_compression(self.base_send)
        await super().accept(subprotocol, headers)
        self.lifecycle.move(State.OPEN)
        if observe.hub is not None:
            observe.hub.connection_opened(self.handler_name)
        self.writer.adapt(self.base_send)
        await self.writer.start(self.on_open)

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close from the server side; the socket leaves the registry at once.

        The socket leaves the registry first (no ghost entry while a server's
        close waits for the closing handshake). A frame the writer is sending
        then gets ``writer.FLUSH_WAIT`` seconds to go out before the close frame;
        frames still queued behind it are dropped (counted).
        """
        state = self.lifecycle.state
        if state is State.CLOSING or state is State.CLOSED:
            return
        if state is State.CONNECTING:
            detail = "close() called during the handshake"
            await self._refuse(Refusal("on_connect", reason or "refused", code=code, detail=detail))
            return
        self.lifecycle.move(State.CLOSING)
        if observe.hub is not None:
            observe.hub.connection_closed(self.handler_name, code or 1000)
        self._sent_code = code or 1000
        await self._release()
        await self.writer.flush()
        self.writer.stop()
        await self._send_close(code, reason)

    async def close_on_request(self, code: object = CloseCode.NORMAL) -> None:
        """The client said it is closing on purpose: release the socket now, for good.

        What ``rpc.close`` does on an :class:`~wsmanager.jsonrpc._dispatch.RpcHandler`; a
        raw handler whose own protocol has such a message may call it. The
        socket leaves the registry and its groups at once (never parked for
        connection recovery: its resume token is spent), and the server sends
        its close frame with ``code``, which crosses the client's own (RFC 6455
        allows both ends to start the closing handshake; a client that keeps
        its socket open gets the server's close). ``on_disconnect`` gets
        ``code`` whatever the server later reports. ``code``: 1000 or
        3000-4999, anything else counts as 1000
        (:func:`~wsmanager.connection._lifecycle.chosen_close_code`). Does nothing unless
        the socket is open.
        """
        if self.lifecycle.state is not State.OPEN:
            return
        self._requested_code = chosen_close_code(code)
        await self.close(self._requested_code)

    async def _send_close(self, code: int | None, reason: str | None) -> None:
        """Send the close frame; never raises (the socket is released whatever happens)."""
        await send_close(self.base_send, code, reason, self.id)

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
        self.base_send = self.writer.send = send
        task = self._receive_task = asyncio.current_task()
        self._close_code = int(CloseCode.GOING_AWAY)  # cancelled (server shutdown) or crashed
        try:
            while task is None or not task.cancelling():  # a cancel lost in a library still stops us
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            # The one place a socket ends. Awaiting in ``finally`` after a
            # cancellation is allowed; daphne waits for its cancelled
            # applications before it exits.
            if self.id:
                await self._finish(self._close_code)
            get_node().release(self)  # counted for its address until its very end, whatever happened

    async def dispatch(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "websocket.receive":
            await db.close_old_connections_if_used()
            await self.websocket_receive(message)
        elif kind == "websocket.connect":
            await db.close_old_connections_if_used()
            connecting = self.websocket_connect(message)
            await (connecting if observe.hub is None else observe.hub.handshake(self, connecting))
        elif kind == "websocket.disconnect":
            self._close_code = int(message.get("code", 1005))
            raise StopConsumer()
        else:
            raise ValueError(f"no handler for message type {kind!r}")

    async def websocket_connect(self, message: Message) -> None:
        refused = await admission.refusal(
            self.scope,
            allowed_origins=self.allowed_origins,
            require_authenticated=self.require_authenticated,
            authorize=self.authorize,
            handler_name=self.handler_name,
        )
        if refused is not None:
            await self._refuse(refused)
            return
        node = get_node()
        address = client_address(self.scope, get_settings().trusted_proxies)
        if not await self._admit_address(node, address):
            return
        try:
            if not await self._sign_in(node, address):
                return
        except RegistryUnavailable as exc:
            await self._refuse(
                Refusal("registry", "registry unavailable", status=503, detail=f"{exc}; try again later")
            )
            return
        try:
            verdict = await (self.on_resume() if self.resumed else self.on_connect())
        except RejectConnection as exc:
            hook = "on_resume" if self.resumed else "on_connect"
            reason = exc.reason or f"refused by {hook}"
            await self._refuse(Refusal("on_connect", reason, code=exc.code, detail=f"{hook} raised {exc!r}"))
            return
        except Exception:
            logger.exception("on_connect of %s raised; socket refused", self.handler_name)
            await self._refuse(Refusal("error", "server error", status=500, detail="on_connect raised"))
            return
        if verdict is False:
            await self._refuse(Refusal("on_connect", "refused by on_connect", detail="it returned False"))
        else:
            await self.accept()

    async def _admit_address(self, node: Node, address: str | None) -> bool:
        """Count this socket for its address in this process, or refuse it with 4429
        when the address holds ``max_connections_per_address`` already (a seam:
        recoverable handlers count parked sockets too, see wsmanager.handlers._resumable).
        The count follows this socket object from here to its end."""
        if node.reserve(self, self.handler_name, address, self.max_connections_per_address):
            return True
        await self._refuse_address(address)
        return False

    async def _refuse_address(self, address: str | None) -> None:
        held = get_node().sockets_from(self.handler_name, address)
        await self._refuse(_too_many(f"{address} holds {held} (max_connections_per_address)"))

    async def _sign_in(self, node: Node, address: str | None, **entry: Any) -> bool:
        """Give the socket its id and registry entry; False if refused meanwhile (a seam)."""
        self._set_id(new_socket_id())
        route = self.scope.get("url_route") or {}
        self.info = ConnectionInfo(
            id=self.id,
            handler=self.handler_name,
            node=await node.start(),
            user_id=admission.user_id_of(self.scope),
            connected_at=time.time(),
            path_kwargs=dict(route.get("kwargs") or {}),
            address=address,
            **entry,
        )
        node.attach(self)
        await get_registry().add(self.info)
        limit = self.max_connections_per_user
        if await admission.over_user_limit(self.handler_name, self.info.user_id, limit):
            detail = f"user {self.info.user_id} is over {limit} (max_connections_per_user)"
            await self._refuse(_too_many(detail))
            return False
        return True

    def _set_id(self, socket_id: str) -> None:
        self.id = self.lifecycle.label = self.writer.label = socket_id

    async def _refuse(self, refusal: Refusal) -> None:
        """Refuse the handshake: an HTTP response (``refusal.code`` None), or accept and
        close with the code. Logged (throttled) on ``wsmanager.connection._refusals``. A socket that
        was registered is released; one that was not touches no registry."""
        bump(Count.REFUSED_HANDSHAKE)
        log_refusal(refusal, self.scope, self.handler_name)
        self.lifecycle.move(State.CLOSING)
        if refusal.code is None:
            await send_refusal(self.scope, self.base_send, refusal)  # before accept: HTTP
        else:
            await super().accept()
            await self._send_close(refusal.code, refusal.reason or None)
        if self.id:
            await self._release()
        else:
            get_node().release(self)
            self.lifecycle.move(State.CLOSED)

    async def websocket_receive(self, message: Message) -> None:
        if observe.hub is not None:
            observe.hub.frame_received(self.handler_name)
        if self.lifecycle.state is not State.OPEN:  # closing: what the client still sends is dropped
            bump(Count.DROPPED_INCOMING)
            return
        text = message.get("text")
        data: str | bytes = text if text is not None else (message.get("bytes") or b"")
        verdict = self.intake.check(data, self.frame_cost)
        if verdict is IntakeVerdict.OK:
            try:
                await self.on_receive(data)
            except Exception as exc:
                await self.on_error(exc)
        elif verdict is IntakeVerdict.TOO_BIG:
            bump(Count.REFUSED_TOO_BIG)
            logger.info("socket %s: frame over %s bytes; closing 1009", self.id, self.max_message_size)
            await self.close(CloseCode.MESSAGE_TOO_BIG, "message too big")
        else:
            bump(Count.RATE_LIMITED)
            if verdict is IntakeVerdict.STRUCK_OUT:
                n = self.rate_limit_strikes
                logger.info("socket %s: over its rate limit %d times in a row; closing 1008", self.id, n)
                await self.close(CloseCode.POLICY_VIOLATION, "rate limit exceeded")
            else:
                await self.on_rate_limited(data)

    async def _finish(self, code: int) -> None:
        """The socket is gone: release it, then run ``on_disconnect`` if it was open
        (with the code the client asked for, when it closed on purpose)."""
        if self._requested_code is not None:
            code = self._requested_code
        if observe.hub is not None and self.lifecycle.state is State.OPEN:
            observe.hub.connection_closed(self.handler_name, code)
        await self._release(code)
        if self.lifecycle.was_open:
            try:
                await self.on_disconnect(code)
            except Exception:
                logger.exception("on_disconnect of %s raised", self.handler_name)

    async def _release(self, code: int | None = None) -> None:
        """Leave the node, the registry and every group (announced); once.

        The first caller does it, in its own task (the RPC layer's clean-up
        spares that task); every later caller (the client's disconnect racing
        a server-side close, a shutdown) returns only once it is complete.
        """
        if self._released is not None:
            await asyncio.shield(self._released)
            return
        if not self.lifecycle.move(State.CLOSED):
            return  # refused before it was registered: nothing to release
        self._released = asyncio.get_running_loop().create_future()
        try:
            await self._leave(code)
        finally:
            self._released.set_result(None)

    async def _leave(self, code: int | None) -> None:
        self.writer.stop()
        node = get_node()
        node.detach(self.id, self)
        try:
            departure = await self._sign_out(node, code)
        except RegistryUnavailable as exc:
            logger.warning("socket %s: registry removal failed (%s); will retry", self.id, exc)
            get_node().upkeep.remember_orphan(self.handler_name, self.id)
            departure = None
        if departure is not None:
            self.info = departure
        await self.on_released(code)

    async def _sign_out(self, node: Node, code: int | None) -> ConnectionInfo | None:
        """Leave the registry and every group (announced); the last entry, if any.
        ``code``: the client's close code, or None (a seam, like ``_sign_in``)."""
        return await presence.release(self.handler_name, self.id, node.id)

    def taken_over(self, key: str) -> bool:  # only with connection recovery (wsmanager.handlers._resumable)
        return False

    async def on_released(self, code: int | None) -> None:
        """Internal hook for subclasses (the RPC layer fails pending calls here)."""


def instance_attributes(cls: type) -> frozenset[str]:
    """The names an instance of handler class ``cls`` binds itself: those annotated
    (not ``ClassVar``) on any class of its MRO. A method of such a name would be
    hidden by the instance's attribute; ``@rpc`` refuses it."""
    names: set[str] = set()
    for klass in cls.__mro__:
        for name, hint in vars(klass).get("__annotations__", {}).items():
            if "ClassVar" not in str(hint):
                names.add(name)
    return frozenset(names)
