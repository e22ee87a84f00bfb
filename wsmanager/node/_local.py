"""What the node needs from a socket open in this process, and from its writer.

Handlers (:mod:`wsmanager.handlers._handler`) and their writers
(:mod:`wsmanager.connection._writer`) have these shapes; the node (:mod:`wsmanager.node._hub`)
and what sits beside it see sockets only through them, so that the layers
below the handler never import it.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..connection._activity import Activity
from ..connection._outbox import Message
from ..registry import ConnectionInfo

__all__ = ["LocalSocket", "Outlet"]


class Outlet(Protocol):
    """A socket's one writer (:class:`wsmanager.connection._writer.Writer`), as the node sees it."""

    def push(self, message: Message) -> bool:
        """Queue an ASGI ``websocket.send`` message without waiting for the
        transport (written at once where it can be); False if dropped."""


class LocalSocket(Protocol):
    """What the node needs from a socket open in this process (a handler)."""

    id: str
    #: The socket's registry entry as this process last wrote it.
    info: ConnectionInfo
    #: Where its frames go (a broadcast hands each socket the same message).
    writer: Outlet
    #: Its last frame in or out (the heartbeat publishes it).
    activity: Activity

    @property
    def settled(self) -> bool:
        """True once the handshake is over (registered, on_connect done)."""

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close from the server side."""

    async def invoke_params(
        self, method: str, params: tuple[Any, ...] | dict[str, Any], /, *, timeout: float | None = None
    ) -> Any:
        """Call a client method and await its result (RPC handlers only)."""

    def taken_over(self, key: str) -> bool:
        """Its session resumed on another connection: if this connection's key is
        ``key``, leave the node now, close (4409) soon, leave the registry alone; True."""
