"""Server adapters: what wsmanager does beyond ASGI on one particular server.

ASGI hides the server, and wsmanager means to run the same on daphne,
uvicorn (``websockets`` or ``wsproto``), hypercorn and granian. Where one
of them needs help, the help lives here, in one :class:`ServerAdapter` per
server, and nowhere else:

* **daphne** (Twisted and autobahn) refuses every close code but 1000 and
  3000-4999 through ASGI, and drops the reason of every ASGI close;
  :func:`send_close_frame` writes such closes on its protocol directly.
  daphne also buffers without bound, so :func:`send_backlog_probe` reads the
  TCP transport's write buffer (the only place the slow-client limit can
  look on daphne).
* **uvicorn with its ``websockets`` implementation** sends ASGI closes as
  they are, but its ``send`` of the close waits for the whole closing
  handshake (up to 10 s when the client does not answer, e.g. a flooding
  client whose frames fill the server's queue); :class:`UvicornWebsocketsAdapter`
  sends such closes in a task of their own, so that the socket leaves the
  registry at once instead of after the handshake.
* **uvicorn with ``wsproto``, hypercorn, granian** send ASGI closes with
  their code and reason as they are, at once: their adapter is the plain
  :class:`ServerAdapter`, which does nothing. uvicorn's ``wsproto``
  implementation and granian report a connection lost without a close frame
  as 1005 rather than 1006 (:func:`lost_codes`, for connection recovery).

The server is detected from the ``send`` callable the server hands to the
application (the package that defines it, looked up through Channels'
middleware wrappers), once per socket, at the handshake and at a close;
never per frame. Guarantees: a send this module does not recognise gets the
plain adapter (no probe, closes go through ASGI); nothing here raises on an
unknown server. Non-guarantee: daphne's probe and close writer read
daphne's and autobahn's private attributes (checked to exist before use);
a daphne release that renames them makes both unavailable, which is safe
(the ASGI path is used) but loses the reason and the limit.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

__all__ = [
    "DaphneAdapter",
    "ServerAdapter",
    "UvicornWebsocketsAdapter",
    "adapter_for",
    "call_when_running",
    "direct_writer",
    "hypercorn_worker_shutdown",
    "lost_codes",
    "send_backlog_probe",
    "send_close",
    "send_close_frame",
    "server_name",
]

logger = logging.getLogger("wsmanager.servers")

#: Middleware layers looked through (Channels' session middleware keeps the
#: server's send as ``real_send``); bounded in case of a cycle.
_MAX_LAYERS = 8


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


class NamedAdapter(ServerAdapter):
    def __init__(self, name: str, lost_codes: frozenset[int] = frozenset({1006})) -> None:
        self.name = name
        self.lost_codes = lost_codes


class DaphneAdapter(ServerAdapter):
    """daphne 4 on Twisted: a close writer and a backlog probe behind its ``send``."""

    name = "daphne"

    def backlog_probe(self, send: Any) -> Callable[[], int] | None:
        """Reads the TCP transport's write buffer behind daphne's ``send``."""
        transport = getattr(_daphne_protocol(send), "transport", None)
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
        write = getattr(_daphne_protocol(send), "sendCloseFrame", None)
        if write is None:
            return False
        reason_utf8 = (reason or "").encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
        write(code=int(code), reasonUtf8=reason_utf8 or None, isReply=False)
        return True


#: Bytes a server's transport may hold for a client before :func:`direct_writer`
#: stops writing at once and leaves the frame to the awaited ASGI ``send``.
DIRECT_LIMIT = 64 * 1024


class UvicornWebsocketsAdapter(NamedAdapter):
    """uvicorn's ``websockets`` implementation: closes sent without waiting for the
    handshake, a backlog probe, and frames written at once (:meth:`direct_writer`)."""

    def __init__(self) -> None:
        super().__init__("uvicorn")
        self._closing: set[asyncio.Task[None]] = set()

    def close_frame(self, send: Any, code: int, reason: str | None) -> bool:
        """Send the ASGI close in a task; True: under way (the handler need not wait for it)."""
        message = {"type": "websocket.close", "code": int(code), "reason": reason or ""}
        task = asyncio.get_running_loop().create_task(self._send_close(send, message))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return True

    def backlog_probe(self, send: Any) -> Callable[[], int] | None:
        """The bytes the TCP transport behind uvicorn's protocol still holds."""
        transport = getattr(getattr(_unwrap(send), "__self__", None), "transport", None)
        size = getattr(transport, "get_write_buffer_size", None)
        return size if callable(size) else None

    def direct_writer(self, send: Any) -> Callable[[dict[str, Any]], bool] | None:
        """Write frames the way ``websockets.broadcast`` does: synchronously on the
        protocol (``write_frame_sync``), skipping uvicorn's awaited ``send``.

        Only while the handshake is complete, the connection open, no
        fragmented message under way and the transport holds at most
        :data:`DIRECT_LIMIT` bytes; otherwise False, and the caller awaits the
        ASGI ``send`` (which waits for the transport to drain). Reads
        ``websockets``' legacy protocol and uvicorn's events (checked to exist).
        """
        proto = getattr(_unwrap(send), "__self__", None)
        needed = ("write_frame_sync", "state", "transport", "handshake_completed_event", "closed_event")
        if proto is None or not all(hasattr(proto, name) for name in needed):
            return None
        try:
            from websockets.protocol import State
        except ImportError:  # pragma: no cover - uvicorn's implementation needs it
            return None
        transport, write, completed, closed = (
            proto.transport, proto.write_frame_sync, proto.handshake_completed_event, proto.closed_event
        )
        is_open = State.OPEN

        def direct(message: dict[str, Any]) -> bool:
            if (
                proto.state is not is_open
                or not completed.is_set()
                or closed.is_set()
                or getattr(proto, "_fragmented_message_waiter", None) is not None
                or transport.get_write_buffer_size() > DIRECT_LIMIT
            ):
                return False
            text = message.get("text")
            if text is not None:
                write(True, 1, _utf8(text))
            else:
                write(True, 2, message.get("bytes") or b"")
            return True

        return direct

    @staticmethod
    async def _send_close(send: Any, message: dict[str, Any]) -> None:
        try:
            await send(message)
        except Exception as exc:  # the client went away meanwhile: nothing left to close
            logger.debug("close %s not sent: %r", message["code"], exc)


_encoded: tuple[str | None, bytes] = (None, b"")


def _utf8(text: str) -> bytes:
    """``text`` as UTF-8, remembered for the last text (a broadcast writes one text to many)."""
    global _encoded
    seen, data = _encoded
    if seen is not text:
        data = text.encode("utf-8", "surrogatepass")
        _encoded = (text, data)
    return data


def _twisted_backlog(transport: Any) -> int:
    buffer: bytes = transport.dataBuffer
    return len(buffer) - int(transport.offset) + int(transport._tempDataLen)


def _unwrap(send: Any) -> Any:
    """The server's own ``send`` behind middleware that kept it as ``real_send``."""
    for _ in range(_MAX_LAYERS):
        inner = getattr(getattr(send, "__self__", None), "real_send", None)
        if inner is None:
            break
        send = inner
    return send


def _daphne_protocol(send: Any) -> Any:
    """The daphne protocol object behind an ASGI ``send``, or None.

    daphne's ``send`` is a ``partial`` of its server's reply method bound to
    the Twisted protocol.
    """
    send = _unwrap(send)
    if not isinstance(send, functools.partial) or not send.args:
        return None
    return send.args[0]


def _defining_module(send: Any) -> str:
    """The module that defines the server's ``send`` ("" when unknown)."""
    send = _unwrap(send)
    if isinstance(send, functools.partial):
        send = send.func
    module = getattr(send, "__module__", None)
    if not isinstance(module, str) or not module:
        owner = getattr(send, "__self__", None)
        module = type(owner if owner is not None else send).__module__
    return module or ""


_PLAIN = {
    "uvicorn": NamedAdapter("uvicorn", frozenset({1005, 1006})),  # its wsproto implementation
    "hypercorn": NamedAdapter("hypercorn"),
    "granian": NamedAdapter("granian", frozenset({1005, 1006})),
}
_DAPHNE = DaphneAdapter()
_UVICORN_WEBSOCKETS = UvicornWebsocketsAdapter()
_UNKNOWN = ServerAdapter()
_UVICORN_WEBSOCKETS_MODULE = "uvicorn.protocols.websockets.websockets_impl"


def adapter_for(send: Any) -> ServerAdapter:
    """The adapter of the server behind ``send`` (the plain one when it is not recognised)."""
    module = _defining_module(send)
    package = module.partition(".")[0]
    if package == "daphne":
        return _DAPHNE
    if module == _UVICORN_WEBSOCKETS_MODULE:
        return _UVICORN_WEBSOCKETS
    return _PLAIN.get(package, _UNKNOWN)


def server_name(send: Any) -> str:
    """The server serving a connection: daphne, uvicorn, hypercorn, granian, or "asgi" (unknown)."""
    return adapter_for(send).name


def lost_codes(send: Any) -> frozenset[int]:
    """The close codes by which the server behind ``send`` reports a lost connection."""
    return adapter_for(send).lost_codes


def direct_writer(send: Any) -> Callable[[dict[str, Any]], bool] | None:
    """The server's way to write a frame at once, where it has one (uvicorn's
    ``websockets`` implementation); None elsewhere."""
    return adapter_for(send).direct_writer(send)


def send_backlog_probe(send: Any) -> Callable[[], int] | None:
    """The server's backlog probe for this socket, or None where it offers none.

    ASGI gives no way to see a client's backlog; only daphne's is read (see
    :class:`DaphneAdapter`).
    """
    return adapter_for(send).backlog_probe(send)


def send_close_frame(send: Any, code: int, reason: str | None) -> bool:
    """Close the server's way where it needs one; False: the caller sends the ASGI close itself.

    daphne: the frame is written on its protocol (any code, with the
    reason). uvicorn's ``websockets`` implementation: the ASGI close is sent
    in a task of its own. Everyone else: False.
    """
    return adapter_for(send).close_frame(send, code, reason)


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


def hypercorn_worker_shutdown() -> tuple[Callable[[], bool], float] | None:
    """In a hypercorn worker process: (is the shutdown under way?, its graceful timeout); else None.

    hypercorn's main process takes SIGTERM and tells its workers through a
    multiprocessing event, which each worker polls every 0.1 s; the worker
    itself gets no signal. On that event it stops listening, gives its
    connections ``graceful_timeout`` seconds (3 by default) to end, then
    cancels them (the clients see 1011 with no reason). The event and the
    timeout are the keyword arguments hypercorn started the worker process
    with (``multiprocessing.current_process()``, private attributes; None
    when they are not there).
    """
    import multiprocessing

    process = multiprocessing.current_process()
    target = getattr(process, "_target", None)
    kwargs = getattr(process, "_kwargs", None)
    if not isinstance(kwargs, dict) or not str(getattr(target, "__module__", "")).startswith("hypercorn"):
        return None
    event = kwargs.get("shutdown_event")
    is_set = getattr(event, "is_set", None)
    if not callable(is_set):
        return None
    grace = getattr(kwargs.get("config"), "graceful_timeout", 3.0)
    return is_set, float(grace)


async def send_close(send: Any, code: int | None, reason: str | None, label: str = "") -> None:
    """Send ``websocket.close`` with ``code`` and ``reason`` through ``send``; never raises.

    Codes go out as plain ints (autobahn refuses an IntEnum). daphne
    refuses codes other than 1000 and 3000-4999 through ASGI, and drops the
    reason of every ASGI close; such closes are written on its protocol
    directly (:func:`send_close_frame`), so the client sees both. A close
    that cannot be sent at all is logged: the caller releases the socket
    whatever happens.
    """
    code = None if code is None else int(code)
    try:
        if code is not None and reason and send_close_frame(send, code, reason):
            return
        message: dict[str, Any] = {"type": "websocket.close"}
        if code is not None:
            message["code"] = code
        if reason:
            message["reason"] = reason
        await send(message)
    except Exception as exc:
        try:
            written = code is not None and send_close_frame(send, code, reason)
        except Exception:
            written = False
        if not written:
            logger.warning("socket %s: close %s could not be sent (%r)", label, code, exc)
