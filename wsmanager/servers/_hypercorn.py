"""hypercorn: its handshake, where a handler's sockets refuse compression."""

from __future__ import annotations

from typing import Any

from ._base import NamedAdapter, unwrap

__all__ = ["HypercornAdapter"]


class HypercornAdapter(NamedAdapter):
    """hypercorn (0.18): plain ASGI, except that its handshake can be told not to compress."""

    def __init__(self) -> None:
        super().__init__("hypercorn")

    def refuse_compression(self, send: Any) -> bool:
        """hypercorn accepts permessage-deflate whenever the client offers it (it has no
        switch); its stream's handshake keeps the client's offer until ``websocket.accept``
        answers it: the offer is forgotten, so the answer has none."""
        handshake = getattr(getattr(unwrap(send), "__self__", None), "handshake", None)
        if handshake is None or not hasattr(handshake, "extensions"):
            return False
        handshake.extensions = None
        return True
