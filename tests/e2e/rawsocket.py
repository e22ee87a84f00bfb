"""A WebSocket client over a plain TCP connection that can write any frame,
valid or not, and can stop reading or answering (a dead or hostile peer)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
from typing import Any

__all__ = ["CLOSE", "CONTINUATION", "GUID", "PING", "TEXT", "RawSocket"]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CONTINUATION, CLOSE, PING = 1, 0, 8, 9


class RawSocket:
    """A WebSocket client over a plain TCP connection that writes any frame, valid or not."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, path: str, rcvbuf: int | None = None) -> RawSocket:
        """Connect and complete the handshake (``rcvbuf``: a small receive buffer, set first)."""
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), 5)
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16))
        writer.write(
            b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), port, key)
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 "), head
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        assert b"sec-websocket-accept: " + accept.lower() in head.lower(), head
        return cls(reader, writer)

    async def send(
        self, opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = True
    ) -> None:
        """Write one frame exactly as described (clients must mask; ``mask=False`` violates that)."""
        length = len(payload)
        head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
        bit = 0x80 if mask else 0
        if length < 126:
            head += bytes([bit | length])
        elif length < 1 << 16:
            head += bytes([bit | 126]) + struct.pack("!H", length)
        else:
            head += bytes([bit | 127]) + struct.pack("!Q", length)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.writer.write(head + payload)
        await self.writer.drain()

    async def recv(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """The next frame from the server: (opcode, payload). Server frames are unmasked."""

        async def read() -> tuple[int, bytes]:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first & 0x0F, await self.reader.readexactly(length)

        return await asyncio.wait_for(read(), timeout)

    async def recv_json(self, timeout: float = 5.0) -> Any:
        opcode, payload = await self.recv(timeout)
        assert opcode == TEXT, (opcode, payload)
        return json.loads(payload)

    async def hello(self) -> str:
        """Read ``rpc.connected`` and return the socket id."""
        message = await self.recv_json()
        assert message["method"] == "rpc.connected", message
        return str(message["params"]["id"])

    async def ending(self, timeout: float = 5.0) -> tuple[str, int | None, int]:
        """Read to the end, then let go: ("close", code, frames before it) or ("dropped", None, frames)."""
        frames = 0
        try:
            while True:
                try:
                    opcode, payload = await self.recv(timeout)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return "dropped", None, frames
                if opcode == CLOSE:
                    return "close", struct.unpack("!H", payload[:2])[0] if payload else None, frames
                frames += 1
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (RST)."""
        self.writer.transport.abort()
