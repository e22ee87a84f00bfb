"""Test helpers: an RPC-aware communicator and a clean slate between tests.

:func:`reset` is the one place that forgets the process's singletons: the
registry backend instance, the node (and its background tasks), the
counters, the database-use flag and the presence warnings; :func:`areset`
also clears and closes the registry's store first.

::

    async def test_send(rpc_app):
        async with RpcCommunicator(app, "/ws/chat/lobby/") as client:
            assert await client.call("who") == [{"id": client.id, "name": None}]

:class:`RpcCommunicator` wraps Channels' ``WebsocketCommunicator`` (in-process,
no server): it learns its socket id from ``rpc.connected``, numbers its calls,
and keeps notifications that arrive while it waits for a result so that
:meth:`RpcCommunicator.next_notification` returns them in order.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from typing import Any

from channels.testing import WebsocketCommunicator

from . import counters, db, health, presence, recovery
from .exceptions import RemoteError
from .node import reset_node
from .registry import get_registry, reset_registry

__all__ = ["RpcCommunicator", "areset", "reset"]


def reset() -> None:
    """Forget the process's singletons (between tests): registry instance, node,
    counters, the database-use flag, presence's gathered changes and warnings, and
    the draining mark, and what recovery learnt of journals."""
    reset_registry()
    reset_node()
    counters.reset()
    db.forget_use()
    presence.reset()
    recovery.reset()
    health.set_draining(False)


async def areset() -> None:
    """Forget every socket, group and the node (call between tests)."""
    registry = get_registry()
    try:
        await registry.clear()
    finally:
        await registry.close()
        reset()


class RpcCommunicator(WebsocketCommunicator):  # type: ignore[misc]
    """A JSON-RPC client for handler tests, running the app in-process."""

    def __init__(
        self,
        application: Any,
        path: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        timeout: float = 3.0,
    ) -> None:
        super().__init__(application, path, headers=headers)
        self.id = ""
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._notes: deque[dict[str, Any]] = deque()

    async def connect(self, timeout: float | None = None) -> tuple[bool, Any]:
        """Open the socket; when accepted, wait for ``rpc.connected`` and keep the id."""
        accepted, detail = await super().connect(timeout or self.timeout)
        if accepted:
            hello = await self.receive_json_from(timeout or self.timeout)
            assert hello.get("method") == "rpc.connected", hello
            self.id = hello["params"]["id"]
        return accepted, detail

    async def __aenter__(self) -> RpcCommunicator:
        accepted, detail = await self.connect()
        if not accepted:
            raise AssertionError(f"socket refused: {detail}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    async def request(self, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Send a call and return its whole response object."""
        call_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": call_id}
        if args or kwargs:
            message["params"] = kwargs or list(args)
        await self.send_to(text_data=json.dumps(message))
        while True:
            reply = await self.receive_json_from(self.timeout)
            if isinstance(reply, dict) and reply.get("id") == call_id and "method" not in reply:
                return reply
            self._notes.append(reply)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a server method; its result, or RemoteError for an error answer."""
        reply = await self.request(method, *args, **kwargs)
        if "error" in reply:
            err = reply["error"]
            raise RemoteError(self.id, method, err["code"], err["message"], err.get("data"))
        return reply["result"]

    async def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Send a notification (no answer)."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if args or kwargs:
            message["params"] = kwargs or list(args)
        await self.send_to(text_data=json.dumps(message))

    async def next_notification(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message from the server that is not a response to our calls."""
        if self._notes:
            return self._notes.popleft()
        reply: dict[str, Any] = await self.receive_json_from(timeout or self.timeout)
        return reply
