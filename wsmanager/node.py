"""The process-local hub ("node"): local sockets, and delivery to other processes.

Each server process has one :class:`Node`. It knows the sockets open in this
process and owns a channel-layer channel (its id) on which other processes
send it frames, close requests and invocations for those sockets.

Delivery rules:

* A frame for a local socket is handed to that socket directly: no channel
  layer hop, no copy; a broadcast is encoded once and the same message is
  written to every local target.
* Frames for sockets of other processes cost **one channel-layer message per
  process**, not per socket; the receiving node fans out locally.
* Per-socket FIFO: frames from one sender to one socket arrive in the order
  they were sent, whether local or remote (the channel layer keeps order per
  channel, the socket's outgoing queue keeps order locally).
* At most once: a frame for a socket that closed meanwhile is dropped and
  counted in :attr:`Node.stats` (``dropped_closed`` or ``dropped_unknown``);
  there is no retry and no acknowledgement.

The node's heartbeat, and what it does on each beat (announcing departures,
retrying failed removals, reconciling with a shared registry), is in
:mod:`wsmanager.upkeep`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import secrets
import socket
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer

from . import remote
from .conf import get_settings
from .exceptions import (
    ConnectionClosed,
    DeliveryError,
    InvokeError,
    InvokeTimeout,
    RemoteError,
    SocketNotFound,
    WsManagerError,
)
from .registry import ConnectionInfo, get_registry
from .upkeep import Upkeep, cancel_requested

__all__ = ["LocalSocket", "Node", "get_node", "reset_node"]

logger = logging.getLogger("wsmanager.node")

Message = dict[str, Any]


class LocalSocket(Protocol):
    """What the node needs from a socket open in this process (a handler)."""

    id: str
    #: The socket's registry entry as this process last wrote it.
    info: ConnectionInfo
    #: True once the handshake is over (registered, on_connect done).
    settled: bool

    async def push(self, message: Message) -> bool:
        """Queue an ASGI ``websocket.send`` message; False if dropped."""

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close from the server side."""

    async def invoke_params(
        self, method: str, params: tuple[Any, ...] | dict[str, Any], /, *, timeout: float | None = None
    ) -> Any:
        """Call a client method and await its result (RPC handlers only)."""


def frame(data: str | bytes) -> Message:
    """The ASGI message that sends ``data`` as a text (str) or binary (bytes) frame."""
    if isinstance(data, str):
        return {"type": "websocket.send", "text": data}
    if isinstance(data, bytes | bytearray | memoryview):
        return {"type": "websocket.send", "bytes": bytes(data)}
    raise TypeError(f"a frame is str (text) or bytes (binary), not {type(data).__name__}")


class Node:
    """This process's hub. Get it with :func:`get_node`."""

    def __init__(self) -> None:
        self.id = ""
        self.sockets: dict[str, LocalSocket] = {}
        #: Counters: delivered, forwarded, dropped_closed, dropped_unknown, ...
        self.stats: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._calls: dict[str, asyncio.Future[Any]] = {}
        self.upkeep = Upkeep(self)
        self._layer: Any = None
        self._exit_hook = False

    # -- life cycle ------------------------------------------------------------
    async def start(self) -> str:
        """Start the node in the running loop once; returns its id.

        A node started in an event loop that has since been replaced (test
        suites run a loop per test) starts afresh with a new id.
        """
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return self.id
        self._stop_tasks()
        self.sockets.clear()
        self._calls.clear()
        self._loop = loop
        conf = get_settings()
        self._layer = get_channel_layer(conf.channel_layer) if conf.channel_layer else None
        if self._layer is not None:
            self.id = await self._layer.new_channel("wsmanager.node")
        else:
            self.id = f"wsmanager.node.local!{secrets.token_hex(8)}"
        logger.debug("node %s started (%s pid %s)", self.id, socket.gethostname(), os.getpid())
        return self.id

    def _ensure_tasks(self) -> None:
        """Start reading the node's channel and the heartbeat (once per loop).

        Started only when needed (a socket attaches, a remote invoke waits for
        its reply), so that a sender-only process such as a management command
        runs no background task.
        """
        if self._tasks or self._loop is None:
            return
        if not self._exit_hook:
            atexit.register(self._at_exit)
            self._exit_hook = True
        if self._layer is not None:
            self._tasks.append(self._loop.create_task(self._read_loop()))
        interval = get_settings().heartbeat_interval
        self._tasks.append(self._loop.create_task(self.upkeep.heartbeat_loop(interval)))

    def _stop_tasks(self) -> list[asyncio.Task[None]]:
        """Cancel the background tasks; returns them (cancelled, maybe not finished yet)."""
        announcing = self.upkeep.announcing
        tasks = [*self._tasks, *([announcing] if announcing is not None else [])]
        for task in tasks:
            with contextlib.suppress(RuntimeError):  # its loop may be closed already
                task.cancel()
        self._tasks.clear()
        self.upkeep.announcing = None
        return tasks

    async def stop(self) -> None:
        """Stop background tasks, forget this process's sockets in the registry and
        announce their departures.

        Waits (up to 5 s) for the tasks to end first, so that no late
        heartbeat marks the node alive again after its sockets were removed.
        """
        loop = asyncio.get_running_loop()
        tasks = [task for task in self._stop_tasks() if task.get_loop() is loop]
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        if self.id:
            registry = get_registry()
            with contextlib.suppress(WsManagerError):
                await registry.remove_node(self.id)
                await self.upkeep.announce_departures(registry)
        self._loop = None

    def _at_exit(self) -> None:
        """Interpreter exit: forget this process's sockets in the registry.

        Servers cancel their connections on a clean shutdown, and each socket
        then leaves the registry by itself; this catches what such a shutdown
        misses (daphne 4.2 skips that step when any connection has no
        application yet). It runs in a fresh event loop, bounded to 5 s.
        Their departures stay queued in the registry: with a shared one, the
        other processes announce them; with the in-memory one nobody is left.
        """
        if not self.id:
            return
        try:
            asyncio.run(asyncio.wait_for(get_registry().remove_node(self.id), 5.0))
        except Exception as exc:
            logger.warning("node %s: removing its sockets at exit failed: %r", self.id, exc)

    def attach(self, sock: LocalSocket) -> None:
        self._ensure_tasks()
        self.sockets[sock.id] = sock

    def detach(self, socket_id: str) -> None:
        self.sockets.pop(socket_id, None)

    def remember_orphan(self, handler: str, socket_id: str) -> None:
        """A registry removal failed (store down): retried on each heartbeat."""
        self.upkeep.orphans.append((handler, socket_id))

    # -- delivery ----------------------------------------------------------------
    async def deliver(
        self, handler: str, routes: Mapping[str, Iterable[str]], message: Message
    ) -> int:
        """Hand ``message`` to every socket in ``routes`` ({node: ids}); how many taken.

        Remote counts are the ids handed to their node's channel; what that
        node then drops (sockets closed meanwhile) is counted there.
        """
        taken = 0
        failed: list[str] = []
        for node_id, ids in routes.items():
            if node_id == self.id:
                taken += await self.deliver_local(ids, message)
                continue
            id_list = list(ids)
            envelope = {
                "type": "wsmanager.deliver",
                "handler": handler,
                "ids": id_list,
                **_payload(message),
            }
            if await self._send_to_node(node_id, envelope):
                taken += len(id_list)
                self.stats["forwarded"] += len(id_list)
            else:
                failed.append(node_id)
        if failed:
            raise DeliveryError(f"channel layer refused frames for node(s) {', '.join(failed)}")
        return taken

    async def deliver_local(self, ids: Iterable[str], message: Message) -> int:
        taken = 0
        for sid in ids:
            sock = self.sockets.get(sid)
            if sock is None:
                self.stats["dropped_unknown"] += 1
            elif await sock.push(message):
                taken += 1
        self.stats["delivered"] += taken
        return taken

    async def close(
        self, handler: str, node_id: str, socket_id: str, code: int, reason: str
    ) -> None:
        if node_id == self.id:
            sock = self.sockets.get(socket_id)
            if sock is None:
                raise SocketNotFound(socket_id, handler)
            await sock.close(code, reason)
            return
        envelope = {"type": "wsmanager.close", "id": socket_id, "code": code, "reason": reason}
        if not await self._send_to_node(node_id, envelope):
            raise DeliveryError(f"channel layer refused a close for node {node_id}")

    async def invoke(
        self,
        handler: str,
        node_id: str,
        socket_id: str,
        method: str,
        params: tuple[Any, ...] | dict[str, Any],
        timeout: float,
    ) -> Any:
        """Invoke a client method on a socket of any node and await the result."""
        if node_id == self.id:
            sock = self.sockets.get(socket_id)
            if sock is None:
                raise SocketNotFound(socket_id, handler)
            if not hasattr(sock, "invoke_params"):
                raise InvokeError(socket_id, method, "the socket's handler does not speak JSON-RPC")
            return await sock.invoke_params(method, params, timeout=timeout)
        args, kwargs = (params, {}) if isinstance(params, tuple) else ((), params)
        self._ensure_tasks()
        call = uuid.uuid4().hex
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[call] = future
        envelope = {
            "type": "wsmanager.invoke",
            "handler": handler,
            "id": socket_id,
            "method": method,
            "args": list(args),
            "kwargs": kwargs,
            "timeout": timeout,
            "call": call,
            "reply_to": self.id,
        }
        try:
            if not await self._send_to_node(node_id, envelope):
                raise DeliveryError(f"channel layer refused an invoke for node {node_id}")
            # The remote side enforces ``timeout``; the margin covers the hops.
            try:
                return await asyncio.wait_for(future, timeout + 5.0)
            except TimeoutError:
                raise InvokeTimeout(socket_id, method, timeout) from None
        finally:
            self._calls.pop(call, None)

    # -- channel layer -------------------------------------------------------------
    async def _send_to_node(self, node_id: str, envelope: Message) -> bool:
        if self._layer is None:
            self.stats["dropped_no_layer"] += 1
            return False
        try:
            await self._layer.send(node_id, envelope)
        except ChannelFull:
            self.stats["dropped_channel_full"] += 1
            logger.warning("channel of node %s is full; message dropped", node_id)
            return False
        except Exception as exc:  # the layer's store is down
            self.stats["dropped_layer_error"] += 1
            logger.warning("channel layer send to %s failed: %r", node_id, exc)
            return False
        return True

    async def _read_loop(self) -> None:
        delay = 0.1
        while not cancel_requested():
            try:
                message = await self._layer.receive(self.id)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _is_timeout(exc):
                    # An idle blocking read timed out in the client library
                    # (redis-py 6+ and channels_redis both wait 5 s): read again.
                    continue
                logger.warning("node %s cannot read its channel (%r); retrying", self.id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            try:
                await self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("node %s failed to handle %r", self.id, message.get("type"))

    async def _handle(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "wsmanager.deliver":
            await self.deliver_local(
                message["ids"], {"type": "websocket.send", **_payload(message)}
            )
        elif kind == "wsmanager.close":
            sock = self.sockets.get(message["id"])
            if sock is not None:
                await sock.close(message["code"], message.get("reason") or None)
        elif kind == "wsmanager.invoke":
            asyncio.get_running_loop().create_task(self._serve_invoke(message))
        elif kind == "wsmanager.invoke_result":
            future = self._calls.get(message["call"])
            if future is not None and not future.done():
                _settle(future, message)
        else:
            logger.warning("node %s got an unknown message type %r", self.id, kind)

    async def _serve_invoke(self, message: Message) -> None:
        reply: Message = {"type": "wsmanager.invoke_result", "call": message["call"]}
        sock = self.sockets.get(message["id"])
        try:
            if sock is None:
                raise SocketNotFound(message["id"], message.get("handler"))
            params = message["kwargs"] or tuple(message["args"])
            reply["result"] = await sock.invoke_params(message["method"], params, timeout=message["timeout"])
        except (RemoteError, InvokeTimeout, SocketNotFound, ConnectionClosed) as exc:
            reply["error"] = remote.error_of(exc)
        except Exception as exc:
            logger.exception("invoke %r on %s failed", message.get("method"), message.get("id"))
            reply["error"] = remote.error_of(exc)
        reply["socket"] = message["id"]
        reply["method"] = message["method"]
        reply["timeout"] = message["timeout"]
        await self._send_to_node(message["reply_to"], reply)


def _is_timeout(exc: BaseException) -> bool:
    """A read timeout of any client library (builtin, or e.g. redis' own TimeoutError)."""
    return isinstance(exc, TimeoutError) or type(exc).__name__ == "TimeoutError"


def _payload(message: Message) -> Message:
    """The data part of a frame message (``text`` or ``bytes``)."""
    key = "text" if "text" in message else "bytes"
    return {key: message[key]}


def _settle(future: asyncio.Future[Any], reply: Message) -> None:
    exc = remote.exception_of(reply)
    if exc is None:
        future.set_result(reply.get("result"))
    else:
        future.set_exception(exc)


_node: Node | None = None


def get_node() -> Node:
    """This process's node (created on first use; started by the first socket)."""
    global _node
    if _node is None:
        _node = Node()
    return _node


def reset_node() -> None:
    """Forget the node (tests)."""
    global _node
    if _node is not None:
        _node._stop_tasks()
    _node = None
