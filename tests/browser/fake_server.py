"""A scripted WebSocket server for client tests: the test plays the server.

It runs the ``websockets`` library on its own event loop in a thread. Each
accepted connection becomes a :class:`Peer` with blocking methods the
(synchronous) test calls: read what the browser sent, send any frame, close
with any code. By default a peer greets with ``rpc.connected`` like the real
server; handshakes can be refused with HTTP 403 to play a server that rejects
or is not ready. ``greeting`` adds params to ``rpc.connected`` (recovery
params, another id), and ``Peer.drop`` ends a connection without a close
frame, as a network failure does. ``pages`` serves HTML over plain HTTP (path -> text), so
that a page of the server's own origin (with its own sessionStorage) can be loaded and reloaded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgpack
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

DEFAULT_TIMEOUT = 10.0


MSGPACK = Subprotocol("wsmanager.v1.msgpack")


def _select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    return MSGPACK if MSGPACK in offered else None


class Peer:
    """One accepted connection, driven from the test's thread."""

    def __init__(self, server: FakeServer, connection: ServerConnection, socket_id: str) -> None:
        self.server = server
        self.connection = connection
        self.id = socket_id
        self.path = connection.request.path if connection.request else ""
        self.closed: Future[None] = Future()

    def _run(self, coro: Any, timeout: float = DEFAULT_TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.server.loop).result(timeout)

    def send(self, message: Any) -> None:
        """Send one text frame: ``message`` as JSON, or as is when it is a str."""
        text = message if isinstance(message, str) else json.dumps(message)
        self._run(self.connection.send(text))

    def send_bytes(self, data: bytes) -> None:
        """Send one binary frame as it is (MessagePack, or not)."""
        self._run(self.connection.send(data))

    def recv_raw(self, timeout: float = DEFAULT_TIMEOUT) -> str | bytes:
        """The next frame from the browser, as it came."""
        frame: str | bytes = self._run(asyncio.wait_for(self.connection.recv(), timeout), timeout + 1)
        return frame

    def recv(self, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """The next frame from the browser, decoded from JSON."""
        return json.loads(self._run(asyncio.wait_for(self.connection.recv(), timeout), timeout + 1))

    def recv_until(self, predicate: Any, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Skip frames (heartbeat pings, say) until one satisfies ``predicate``."""
        while True:
            message = self.recv(timeout)
            if predicate(message):
                return message

    @property
    def query(self) -> dict[str, list[str]]:
        """The query parameters of the URL the browser opened."""
        return parse_qs(urlsplit(self.path).query)

    def drop(self) -> None:
        """End the TCP connection at once, without a close frame (the browser sees 1006)."""
        self.server.loop.call_soon_threadsafe(self.connection.transport.abort)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with this code (the closing handshake included)."""
        self._run(self.connection.close(code, reason))

    def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.closed.result(timeout)


class FakeServer:
    """Listens on a free loopback port; ``next_peer()`` hands over connections in order."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.peers: queue.Queue[Peer] = queue.Queue()
        self.refuse = 0  # Refuse this many more handshakes with HTTP 403.
        self.greet = True  # Send rpc.connected on accept.
        self.refused = 0
        self.refused_paths: list[str] = []
        # Extra (or replaced) params of rpc.connected for a new peer, e.g. recovery ones.
        self.greeting: Callable[[Peer], dict[str, Any]] | None = None
        self.pages: dict[str, str] = {}  # path -> HTML answered to a plain GET
        self._ids = itertools.count(1)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str = "/ws/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def start(self) -> FakeServer:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(10)
        return self

    async def _serve(self) -> Server:
        # A client that offers MessagePack gets it (and speaks it); one that offers nothing, none.
        return await serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            select_subprotocol=_select_subprotocol,
        )

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        page = self.pages.get(request.path)
        if page is not None and "websocket" not in request.headers.get("Upgrade", "").lower():
            body = page.encode()
            headers = Headers(
                [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]
            )
            return Response(200, "OK", headers, body)
        if self.refuse > 0:
            self.refuse -= 1
            self.refused += 1
            self.refused_paths.append(request.path)
            return connection.respond(403, "refused by the test\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        socket_id = f"fake-{next(self._ids)}"
        peer = Peer(self, connection, socket_id)
        if self.greet:
            params: dict[str, Any] = {"id": socket_id}
            if self.greeting is not None:
                params.update(self.greeting(peer))
            peer.id = params["id"]
            notification = {"jsonrpc": "2.0", "method": "rpc.connected", "params": params}
            if connection.subprotocol == MSGPACK:  # a MessagePack socket takes binary frames only
                await connection.send(msgpack.packb(notification))
            else:
                await connection.send(json.dumps(notification))
        self.peers.put(peer)
        try:
            await connection.wait_closed()
        finally:
            peer.closed.set_result(None)

    def next_peer(self, timeout: float = DEFAULT_TIMEOUT) -> Peer:
        """The next connection the browser opened (waits for it)."""
        return self.peers.get(timeout=timeout)

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.loop.close()
