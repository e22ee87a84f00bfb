"""The adapter every server starts from, and what all adapters share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["DIRECT_LIMIT", "NamedAdapter", "ServerAdapter", "unwrap"]

#: Bytes a server's transport may hold for a client before :func:`direct_writer`
#: stops writing at once and leaves the frame to the awaited ASGI ``send``.
DIRECT_LIMIT = 64 * 1024


#: Middleware layers looked through (Channels' session middleware keeps the
#: server's send as ``real_send``); bounded in case of a cycle.
MAX_LAYERS = 8


class ServerAdapter:
    """A server that needs no help beyond ASGI (uvicorn, hypercorn, granian, unknown)."""

    name = "asgi"
    #: Close codes this server reports for a connection lost without a close
    #: frame, besides 1006 (granian and uvicorn's wsproto report 1005 then,
    #: the code of a close frame without a code; connection recovery parks both).
    lost_codes: frozenset[int] = frozenset({1006})

    def backlog_probe(self, send: Any) -> Callable[[], int] | None:
        """A function returning the bytes queued to the client; None: this server shows none."""
        return None

    def close_frame(self, send: Any, code: int, reason: str | None) -> bool:
        """Write a close frame below ASGI; False: use the ASGI ``websocket.close``."""
        return False

    def direct_writer(self, send: Any) -> Callable[[dict[str, Any]], bool] | None:
        """A function that writes a ``websocket.send`` message at once, without
        awaiting, and says whether it did; None: this server offers none."""
        return None

    def refuse_compression(self, send: Any) -> bool:
        """Before the handshake completes: make it offer the client no permessage-deflate.
        True: this socket will not be compressed (refused, or the server never compresses);
        False: this server gives no way to refuse it (an unknown server)."""
        return False

    def connection_ended(self, send: Any, exc: BaseException) -> bool:
        """Whether ``exc``, raised by ``send``, says the connection is no longer open
        (its closing handshake began, or it was lost) rather than that the server
        refused this one frame. ASGI has a server raise an ``OSError`` for a send on
        a closed connection (uvicorn's ``ClientDisconnected``, in its three
        implementations); hypercorn and granian drop such a write without a word."""
        return isinstance(exc, OSError)


class NamedAdapter(ServerAdapter):
    """A known server; ``compresses``: whether it may negotiate permessage-deflate at all."""

    def __init__(
        self, name: str, lost_codes: frozenset[int] = frozenset({1006}), compresses: bool = True
    ) -> None:
        self.name = name
        self.lost_codes = lost_codes
        self.compresses = compresses

    def refuse_compression(self, send: Any) -> bool:
        """True where the server never compresses (granian); a server that does refuses it
        in its own adapter, or cannot (False)."""
        return not self.compresses


def unwrap(send: Any) -> Any:
    """The server's own ``send`` behind middleware that kept it as ``real_send``."""
    for _ in range(MAX_LAYERS):
        inner = getattr(getattr(send, "__self__", None), "real_send", None)
        if inner is None:
            break
        send = inner
    return send
