"""Server-to-client calls across processes: the caller's side and the serving side.

The caller's node sends a ``wsmanager.invoke`` envelope to the socket's
node and waits for a ``wsmanager.invoke_result`` on its own channel;
:mod:`wsmanager.node._remote` encodes the outcome. The serving side enforces the
call's timeout; the caller waits 5 s longer for the hops, then raises
:class:`InvokeTimeout`. A result that arrives after that is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from ..connection._outbox import Message
from ..exceptions import ConnectionClosed, DeliveryError, InvokeTimeout, RemoteError, SocketNotFound
from . import _remote as remote
from ._link import Link

__all__ = ["Calls", "invoke_envelope", "serve"]

logger = logging.getLogger(__name__)


class Calls:
    """The calls one node is waiting on, by call id."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[Any]] = {}

    def clear(self) -> None:
        self.waiting.clear()

    async def call(
        self, link: Link, node_id: str, envelope: Message, timeout: float, margin: float = 5.0
    ) -> Any:
        """Send an invoke ``envelope`` (without ``call``) to ``node_id`` and await its
        outcome, ``timeout`` plus ``margin`` seconds (the serving side enforces ``timeout``)."""
        call = envelope["call"] = uuid.uuid4().hex
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[call] = future
        try:
            if not await link.send(node_id, envelope):
                raise DeliveryError(f"channel layer refused an invoke for node {node_id}")
            try:
                return await asyncio.wait_for(future, timeout + margin)
            except TimeoutError:
                raise InvokeTimeout(envelope["id"], envelope["method"], timeout) from None
        finally:
            self.waiting.pop(call, None)

    def settle(self, reply: Message) -> None:
        """An invoke result arrived: settle its call (if still waited on)."""
        future = self.waiting.get(reply["call"])
        if future is None or future.done():
            return
        exc = remote.exception_of(reply)
        if exc is None:
            future.set_result(reply.get("result"))
        else:
            future.set_exception(exc)


def invoke_envelope(
    handler: str,
    socket_id: str,
    method: str,
    params: tuple[Any, ...] | dict[str, Any],
    timeout: float,
    reply_to: str,
) -> Message:
    """The ``wsmanager.invoke`` envelope of a call (``params`` by position or by name);
    :meth:`Calls.call` adds its call id, :func:`serve` reads it on the socket's node."""
    args, kwargs = (params, {}) if isinstance(params, tuple) else ((), params)
    return {
        "type": "wsmanager.invoke",
        "handler": handler,
        "id": socket_id,
        "method": method,
        "args": list(args),
        "kwargs": kwargs,
        "timeout": timeout,
        "reply_to": reply_to,
    }


async def serve(sock: Any, link: Link, message: Message) -> None:
    """Run an invoke envelope on a local socket (None: not here) and send the result back."""
    reply: Message = {"type": "wsmanager.invoke_result", "call": message["call"]}
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
    await link.send(message["reply_to"], reply)
