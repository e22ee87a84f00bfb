"""uvicorn: its ``websockets-sansio``, ``websockets`` and ``wsproto`` implementations."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from typing import Any

from ._base import DIRECT_LIMIT, NamedAdapter, unwrap

try:  # uvicorn's two websockets implementations need the library; the others do not
    from websockets import frames as ws_frames
    from websockets import protocol as ws_protocol
except ImportError:  # pragma: no cover - then those implementations are not there either
    ws_frames = ws_protocol = None  # type: ignore[assignment]

_OPEN = ws_protocol.State.OPEN if ws_protocol is not None else None

__all__ = ["UvicornAdapter", "UvicornSansioAdapter", "UvicornWebsocketsAdapter"]

logger = logging.getLogger(__name__)


class UvicornAdapter(NamedAdapter):
    """uvicorn (its ``wsproto`` implementation, and the base of the ``websockets`` one):
    a backlog probe, and frames written at once (:meth:`direct_writer`)."""

    def __init__(self) -> None:
        super().__init__("uvicorn", frozenset({1005, 1006}))

    def backlog_probe(self, send: Any) -> Callable[[], int] | None:
        """The bytes the TCP transport behind uvicorn's protocol still holds."""
        transport = getattr(getattr(unwrap(send), "__self__", None), "transport", None)
        size = getattr(transport, "get_write_buffer_size", None)
        return size if callable(size) else None

    def refuse_compression(self, send: Any) -> bool:
        """``wsproto``: uvicorn offers permessage-deflate at ``websocket.accept`` when its
        config says so; this connection reads a copy of the config that says no, made once
        per config and kept on it (not one per socket)."""
        proto = getattr(unwrap(send), "__self__", None)
        config: Any = getattr(proto, "config", None)
        if proto is None or not hasattr(config, "ws_per_message_deflate"):
            return False
        if config.ws_per_message_deflate:
            plain = getattr(config, "_wsmanager_uncompressed", None)
            if plain is None:
                plain = copy.copy(config)
                plain.ws_per_message_deflate = False
                config._wsmanager_uncompressed = plain
            proto.config = plain
        return True

    def direct_writer(self, send: Any) -> Callable[[dict[str, Any]], bool] | None:
        """``wsproto``: what uvicorn's ``send`` does once the transport is writable
        (``conn.send`` then ``transport.write``), without awaiting; False while the
        handshake is not complete, a close was sent, the transport is paused or
        holds over :data:`DIRECT_LIMIT` bytes."""
        proto = getattr(unwrap(send), "__self__", None)
        needed = ("conn", "transport", "writable", "handshake_complete", "close_sent", "disconnected")
        if proto is None or not all(hasattr(proto, name) for name in needed):
            return None
        try:
            from wsproto.events import Message as WsMessage
        except ImportError:  # pragma: no cover - the implementation needs it
            return None
        transport, writable = proto.transport, proto.writable

        def direct(message: dict[str, Any]) -> bool:
            if (
                not proto.handshake_complete
                or proto.close_sent
                or proto.disconnected
                or getattr(proto, "response_started", False)
                or not writable.is_set()
                or transport.is_closing()
                or transport.get_write_buffer_size() > DIRECT_LIMIT
            ):
                return False
            text = message.get("text")
            transport.write(proto.conn.send(WsMessage(data=text if text is not None else message["bytes"])))
            return True

        return direct


class UvicornWebsocketsAdapter(UvicornAdapter):
    """uvicorn's ``websockets`` implementation: closes sent without waiting for the
    handshake, a backlog probe, and frames written at once (:meth:`direct_writer`)."""

    def __init__(self) -> None:
        super().__init__()
        self._closing: set[asyncio.Task[None]] = set()

    def close_frame(self, send: Any, code: int, reason: str | None) -> bool:
        """Send the ASGI close in a task; True: under way (the handler need not wait for it)."""
        message = {"type": "websocket.close", "code": int(code), "reason": reason or ""}
        task = asyncio.get_running_loop().create_task(self._send_close(send, message))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return True

    def refuse_compression(self, send: Any) -> bool:
        """``websockets``' legacy handshake negotiates extensions from the list the protocol
        was made with (this connection's own), after uvicorn's ``process_request`` returns on
        ``websocket.accept``: that list is emptied."""
        offered = getattr(getattr(unwrap(send), "__self__", None), "available_extensions", None)
        if not isinstance(offered, list):
            return False
        offered.clear()
        return True

    def direct_writer(self, send: Any) -> Callable[[dict[str, Any]], bool] | None:
        """Write frames the way ``websockets.broadcast`` does: synchronously on the
        protocol (``write_frame_sync``), skipping uvicorn's awaited ``send``.

        Only while the handshake is complete, the connection open, no
        fragmented message under way and the transport holds at most
        :data:`DIRECT_LIMIT` bytes; otherwise False, and the caller awaits the
        ASGI ``send`` (which waits for the transport to drain). Reads
        ``websockets``' legacy protocol (its attributes checked to exist).
        """
        proto = getattr(unwrap(send), "__self__", None)
        needed = ("write_frame_sync", "state", "transport", "extensions", "_fragmented_message_waiter")
        if proto is None or not all(hasattr(proto, name) for name in needed):
            return None
        if ws_protocol is None:  # pragma: no cover - the implementation needs it
            return None

        transport, write = proto.transport, proto.write_frame_sync
        buffered = transport.get_write_buffer_size
        is_open = ws_protocol.State.OPEN

        def direct(message: dict[str, Any]) -> bool:
            # OPEN: the handshake response is out (websockets sets it after writing it) and
            # no close has begun (uvicorn's close goes through websockets' close()).
            if (
                proto.state is not is_open
                or buffered() > DIRECT_LIMIT
                or proto._fragmented_message_waiter is not None
            ):
                return False
            if proto.extensions:  # per-connection state (compression): its own framing
                text = message.get("text")
                data = _utf8(text) if text is not None else message["bytes"]
                write(True, 1 if text is not None else 2, data)
            else:  # the same bytes for every such socket: framed once per message
                transport.write(_framed(message))
            return True

        return direct

    @staticmethod
    async def _send_close(send: Any, message: dict[str, Any]) -> None:
        try:
            await send(message)
        except Exception as exc:  # the client went away meanwhile: nothing left to close
            logger.debug("close %s not sent: %r", message["code"], exc)


class UvicornSansioAdapter(UvicornAdapter):
    """uvicorn's ``websockets-sansio`` implementation (what ``--ws auto`` picks when
    ``websockets`` is installed, in the uvicorn releases tested here): a backlog
    probe, and frames written at once (:meth:`direct_writer`). Its closes go out
    at once through ASGI."""

    def refuse_compression(self, send: Any) -> bool:
        """uvicorn's sans-I/O protocol negotiates the extensions when the request arrives,
        before the application runs, and writes the response it built then at
        ``websocket.accept``: the extensions are taken out of that response and of the
        connection (no frame has been sent or received yet)."""
        proto = getattr(unwrap(send), "__self__", None)
        conn, response = getattr(proto, "conn", None), getattr(proto, "response", None)
        headers = getattr(response, "headers", None)
        if conn is None or headers is None or not hasattr(conn, "extensions"):
            return False
        if "Sec-WebSocket-Extensions" in headers:
            del headers["Sec-WebSocket-Extensions"]
        conn.extensions = []
        return True

    def direct_writer(self, send: Any) -> Callable[[dict[str, Any]], bool] | None:
        """What uvicorn's ``send`` does once the transport is writable (the
        ``websockets`` sans-I/O protocol's ``send_text`` or ``send_binary``, then
        ``transport.write``), without awaiting; for a connection without
        extensions the frame is built once per message and its bytes written
        as they are (the protocol keeps no state of frames sent whole).

        False while the handshake is not complete, a close was sent or received,
        the connection is lost, a fragmented message is under way, the transport
        is paused or holds over :data:`DIRECT_LIMIT` bytes: then the caller
        awaits the ASGI ``send``. Reads the protocol's attributes (checked to exist).
        """
        proto = getattr(unwrap(send), "__self__", None)
        conn: Any = getattr(proto, "conn", None)
        needed = ("transport", "writable", "handshake_complete", "close_sent", "disconnected")
        sansio = ("send_text", "send_binary", "data_to_send", "extensions", "state")
        if (
            proto is None
            or conn is None
            or not all(hasattr(proto, name) for name in (*needed, "initial_response"))
            or not all(hasattr(conn, name) for name in (*sansio, "expect_continuation_frame"))
        ):
            return None
        if ws_protocol is None:  # pragma: no cover - the implementation needs it
            return None
        return _SansioDirect(proto, conn).write


class _SansioDirect:
    """:meth:`UvicornSansioAdapter.direct_writer`'s writer for one connection, as the
    bound method :meth:`write`. uvicorn's default implementation, so an object of its own
    rather than a closure: two objects per socket (it and the bound method) instead of a
    function, its tuple, six cells and a bound method, on every idle socket; a call costs
    about what the closure's did (a ``__call__`` would cost 15 % more per frame)."""

    __slots__ = ("conn", "proto", "transport", "writable")

    def __init__(self, proto: Any, conn: Any) -> None:
        self.proto, self.conn = proto, conn
        self.transport, self.writable = proto.transport, proto.writable

    def write(self, message: dict[str, Any]) -> bool:
        proto, conn, transport = self.proto, self.conn, self.transport
        if (
            not proto.handshake_complete
            or proto.close_sent
            or proto.disconnected
            or proto.initial_response is not None
            or conn.state is not _OPEN
            or conn.expect_continuation_frame
            or not self.writable.is_set()
            or transport.get_write_buffer_size() > DIRECT_LIMIT
        ):
            return False
        if conn.extensions:  # per-connection state (compression): the protocol frames it
            text = message.get("text")
            if text is not None:
                conn.send_text(_utf8(text))
            else:
                conn.send_binary(message["bytes"])
            transport.write(b"".join(conn.data_to_send()))
        else:  # the same bytes for every such socket: framed once per message
            transport.write(_framed(message))
        return True


_encoded: tuple[str | None, bytes] = (None, b"")


_last_frame: tuple[dict[str, Any] | None, bytes] = (None, b"")


def _framed(message: dict[str, Any]) -> bytes:
    """The unmasked, uncompressed WebSocket frame of a ``websocket.send`` message,
    remembered for the last message (a broadcast hands every socket the same one)."""
    global _last_frame
    seen, data = _last_frame
    if seen is not message:
        text = message.get("text")
        if text is not None:
            data = ws_frames.Frame(ws_frames.Opcode.TEXT, _utf8(text)).serialize(mask=False)
        else:
            data = ws_frames.Frame(ws_frames.Opcode.BINARY, message.get("bytes") or b"").serialize(mask=False)
        _last_frame = (message, data)
    return data


def _utf8(text: str) -> bytes:
    """``text`` as UTF-8, remembered for the last text (a broadcast writes one text to many).
    Strict, as uvicorn's own ``send``: a lone surrogate raises, and the writer then
    takes the awaited path, which fails the same way (the socket closes 1011)."""
    global _encoded
    seen, data = _encoded
    if seen is not text:
        data = text.encode("utf-8")
        _encoded = (text, data)
    return data
