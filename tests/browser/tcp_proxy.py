"""A TCP proxy the test controls, to break a page's connection the way a network does.

It forwards a loopback port to a server's port, byte for byte, on its own
event loop in a thread (like fake_server.py). ``cut()`` aborts every
connection through it at once: both ends see the TCP connection reset, no
WebSocket close frame (the browser reports 1006). While ``refusing`` is set,
new connections are accepted and reset at once, as a network that is still
down: the browser's attempts fail and it keeps retrying until ``admit()``.
``retarget()`` sends new connections to another port (another process of a
cluster, as a load balancer would after one died).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

CHUNK = 65536


class TcpProxy:
    """Listens on a free loopback port and forwards to ``127.0.0.1:target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self.refusing = False
        self.refused = 0  # connections reset on arrival while refusing
        self.cuts = 0  # connections aborted by cut()
        self._refused_event = threading.Condition()
        self._open: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        self._thread.start()
        self._server = self._run(asyncio.start_server(self._handle, "127.0.0.1", 0))
        return self

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            with self._refused_event:
                self.refused += 1
                self._refused_event.notify_all()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for end in (writer, up_writer):
                self._open.discard(end)
                end.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction until EOF (then half-close) or until the connection is aborted."""
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
            if not writer.transport.is_closing() and writer.can_write_eof():
                writer.write_eof()

    def cut(self, refuse: bool = True) -> int:
        """Reset every connection now (and, with ``refuse``, every new one until ``admit()``).

        Returns how many TCP connections (both sides counted) were aborted.
        """

        async def abort_all() -> int:
            self.refusing = refuse
            ends = list(self._open)
            for end in ends:
                end.transport.abort()
            return len(ends)

        aborted = self._run(abort_all())
        self.cuts += aborted
        return aborted

    def retarget(self, port: int) -> None:
        """Forward the connections that arrive from now on to ``port``."""
        self.loop.call_soon_threadsafe(setattr, self, "target_port", port)

    def admit(self) -> None:
        """Let new connections through again."""
        self.loop.call_soon_threadsafe(setattr, self, "refusing", False)

    def wait_refused(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` connection attempts in all were refused (the client did retry)."""
        with self._refused_event:
            if not self._refused_event.wait_for(lambda: self.refused >= count, timeout):
                raise TimeoutError(f"{self.refused} of {count} attempts refused after {timeout} s")

    def stop(self) -> None:
        async def shutdown() -> None:
            for end in list(self._open):
                end.transport.abort()
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        if self._thread.is_alive():
            self._run(shutdown())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.loop.close()
