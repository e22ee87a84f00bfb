"""daphne 4 (Twisted, autobahn): closes written on its protocol, its transport's backlog,
and a callback once its reactor runs."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from ._base import ServerAdapter, unwrap

__all__ = ["DaphneAdapter", "call_when_running", "daphne_protocol"]


class DaphneAdapter(ServerAdapter):
    """daphne 4 on Twisted: a close writer and a backlog probe behind its ``send``."""

    name = "daphne"

    def backlog_probe(self, send: Any) -> Callable[[], int] | None:
        """Reads the TCP transport's write buffer behind daphne's ``send``."""
        transport = getattr(daphne_protocol(send), "transport", None)
        needed = ("dataBuffer", "offset", "_tempDataLen")
        if transport is None or not all(hasattr(transport, name) for name in needed):
            return None
        return functools.partial(_twisted_backlog, transport)

    def close_frame(self, send: Any, code: int, reason: str | None) -> bool:
        """Write a close frame with ``code`` directly on daphne's protocol.

        daphne closes through autobahn's ``sendClose``, which refuses every
        code but 1000 and 3000-4999, so 1008, 1009, 1011 and 1013 cannot go
        through ASGI there. autobahn's ``sendCloseFrame`` (what daphne itself
        uses to close with 1011) writes any code and starts the closing
        handshake. The reason is cut to 123 bytes of whole characters (RFC
        6455 section 5.5: a control frame's payload is at most 125 bytes).
        """
        write = getattr(daphne_protocol(send), "sendCloseFrame", None)
        if write is None:
            return False
        reason_utf8 = (reason or "").encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
        write(code=int(code), reasonUtf8=reason_utf8 or None, isReply=False)
        return True

    def refuse_compression(self, send: Any) -> bool:
        """Nothing to refuse: daphne never offers permessage-deflate (django/daphne PR #331)."""
        return True

    def connection_ended(self, send: Any, exc: BaseException) -> bool:
        """Also autobahn's ``Disconnected`` ("Attempt to send on a closed protocol"):
        from the client's close frame (or ours) until the TCP connection is gone
        and daphne tells the application, its protocol is no longer OPEN and
        refuses every frame (after that, daphne drops them without a word)."""
        if super().connection_ended(send, exc):
            return True
        protocol = daphne_protocol(send)
        state, open_state = getattr(protocol, "state", None), getattr(protocol, "STATE_OPEN", None)
        return state is not None and open_state is not None and state != open_state


def _twisted_backlog(transport: Any) -> int:
    buffer: bytes = transport.dataBuffer
    return len(buffer) - int(transport.offset) + int(transport._tempDataLen)


def daphne_protocol(send: Any) -> Any:
    """The daphne protocol object behind an ASGI ``send``, or None.

    daphne's ``send`` is a ``partial`` of its server's reply method bound to
    the Twisted protocol.
    """
    send = unwrap(send)
    if not isinstance(send, functools.partial) or not send.args:
        return None
    return send.args[0]


def call_when_running(callback: Callable[[], None]) -> bool:
    """Under daphne, before its reactor runs: call ``callback`` once it runs; False elsewhere.

    daphne serves no ASGI lifespan, and installs its signal handlers when its
    Twisted reactor starts, after the ASGI module was imported; a callback
    the reactor runs at start-up comes after them. Never imports Twisted
    (importing its reactor would install the wrong one): acts only when
    daphne has installed it already. Under another server that imported
    daphne (its Django app does), the reactor never runs and neither does
    ``callback``, which is harmless.
    """
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or getattr(reactor, "running", True):
        return False
    reactor.callWhenRunning(callback)
    return True
