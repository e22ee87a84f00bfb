"""The load generator's transport: WebSocket and HTTP/1.1 clients with little overhead.

:class:`WsConn` is an ``asyncio.Protocol`` driving the ``websockets``
library's Sans-I/O client (``websockets.client.ClientProtocol``): the library
does the handshake, framing and masking, and frames are handled right in
``data_received``, with no task per connection. That keeps the client's cost
per message small and the same for every server, so that the numbers say
more about the servers; a thousand listeners cost one callback per frame.

:class:`HttpConn` is a keep-alive HTTP/1.1 client over asyncio streams
(``Content-Length`` and chunked bodies), enough for ``POST /send/<id>``.

Nothing here knows any server's code: the wire protocols on top are in
:mod:`bench.systems`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Origin
from websockets.uri import parse_uri

__all__ = ["HttpConn", "WsConn", "open_ws"]

ORIGIN = "http://127.0.0.1"


class WsConn(asyncio.Protocol):
    """One client WebSocket. Text frames go to :attr:`on_text` if set, else to :meth:`recv`.

    ``ping``/``pong``: an application-level keep-alive text (socket.io's ``"2"``)
    answered with ``pong`` without reaching the reader.
    """

    def __init__(self, uri: str, origin: str | None = ORIGIN) -> None:
        loop = asyncio.get_running_loop()
        self.proto = ClientProtocol(parse_uri(uri), origin=Origin(origin) if origin else None, max_size=None)
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.on_text: Callable[[str], None] | None = None
        self.ping: str | None = None
        self.pong = ""
        self._inbox: deque[str] = deque()
        self._waiter: asyncio.Future[str] | None = None
        self._parts: list[bytes] = []

    # -- asyncio.Protocol ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.proto.send_request(self.proto.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.proto.receive_data(data)
        for event in self.proto.events_received():
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Response) and not self.opened.done():
                if self.proto.handshake_exc is not None:
                    self.opened.set_exception(self.proto.handshake_exc)
                else:
                    self.opened.set_result(None)
        self._flush()

    def eof_received(self) -> bool | None:
        self.proto.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        error = ConnectionError(f"connection lost ({exc!r})")
        if not self.opened.done():
            self.opened.set_exception(error)
        if not self.closed.done():
            self.closed.set_result(None)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)

    # -- frames ----------------------------------------------------------------------
    def _frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.TEXT or (frame.opcode is Opcode.CONT and self._parts):
            if not frame.fin:
                self._parts.append(bytes(frame.data))
                return
            if self._parts:
                data = b"".join([*self._parts, bytes(frame.data)])
                self._parts.clear()
            else:
                data = bytes(frame.data)
            self._text(data.decode())
        elif frame.opcode is Opcode.BINARY:
            self._text(bytes(frame.data).decode("latin-1"))

    def _text(self, text: str) -> None:
        if text == self.ping:
            self.send_text(self.pong)
            return
        if self.on_text is not None:
            self.on_text(text)
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(text)
        else:
            self._inbox.append(text)

    async def recv(self) -> str:
        """The next text frame (callers bound their waits with ``asyncio.timeout``)."""
        if self._inbox:
            return self._inbox.popleft()
        if self.closed.done():
            raise ConnectionError("connection closed")
        self._waiter = asyncio.get_running_loop().create_future()
        return await self._waiter

    def send_text(self, text: str) -> None:
        self.proto.send_text(text.encode())
        self._flush()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for data in self.proto.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()

    def close(self) -> None:
        """Start the closing handshake (the server then closes the TCP connection)."""
        if self.transport is not None and not self.transport.is_closing():
            self.proto.send_close(1000)
            self._flush()

    def abort(self) -> None:
        """Drop the TCP connection at once, without a closing handshake."""
        if self.transport is not None:
            self.transport.abort()


async def open_ws(host: str, port: int, path: str, origin: str | None = ORIGIN) -> WsConn:
    """Connect and complete the WebSocket handshake."""
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(lambda: WsConn(f"ws://{host}:{port}{path}", origin), host, port)
    await conn.opened
    return conn


class HttpConn:
    """A keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        """POST ``body`` as plain text; the status code (the body is read and dropped)."""
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        status_line = await self._reader.readline()
        if not status_line:
            raise ConnectionError("server closed the HTTP connection")
        status = int(status_line.split()[1])
        length = 0
        chunked, keep_alive = False, True
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and value == "close":
                keep_alive = False
        if chunked:
            while True:
                size = int((await self._reader.readline()).split(b";")[0], 16)
                await self._reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self._reader.readexactly(length)
        if not keep_alive:
            self.close()
        return status

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
