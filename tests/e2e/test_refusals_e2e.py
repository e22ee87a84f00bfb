"""A refused handshake says why, on every server, with no ``LOGGING`` configured:
the status and reason in the HTTP response where the server offers the ASGI
``websocket.http.response`` extension (uvicorn, hypercorn, granian), a bare 403
on daphne, and a WARNING line in the server's own output on all of them
(docs/protocol.md, section 2)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import websockets

from tests.servers import (
    ServerProcess,
    every_implementation,  # noqa: F401  (server_kind: also uvicorn's other implementations)
    server_process,
)

pytestmark = pytest.mark.e2e

#: Servers that cannot answer a handshake with anything but an empty 403.
NO_HTTP_RESPONSE = {"daphne"}


@pytest.fixture(scope="module")
def server(server_kind: str) -> Iterator[ServerProcess]:
    proc = server_process(
        server_kind,
        app="tests.e2e.refusals_app:application",
        env={"DJANGO_SETTINGS_MODULE": "tests.e2e.bare_settings"},
    )
    proc.start()
    yield proc
    proc.stop()


async def refused(url: str, origin: str | None = None) -> websockets.InvalidStatus:
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(url, origin=origin, open_timeout=10)  # type: ignore[arg-type]
    return info.value


async def logged(server: ServerProcess, line: str, timeout: float = 10.0) -> str:
    """The server's output once it contains ``line`` (the worker writes it asynchronously)."""
    deadline = time.monotonic() + timeout
    while line not in (text := server.log_text()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{line!r} not in the {server.kind} log:\n{server.log_tail()}")
        await asyncio.sleep(0.05)
    return text


@pytest.mark.parametrize(
    ("path", "origin", "status", "reason", "handler"),
    [
        ("/ws/open/", "http://evil.example", 403, "origin 'http://evil.example' is not allowed", "open"),
        ("/ws/members/", None, 403, "authentication required", "members"),
        ("/ws/nowhere/", None, 404, "no WebSocket route for this path", ""),
    ],
    ids=["origin", "anonymous", "no-route"],
)
async def test_a_refusal_tells_the_client_where_it_can_and_always_the_log(
    server: ServerProcess, path: str, origin: str | None, status: int, reason: str, handler: str
) -> None:
    error = await refused(f"{server.ws_url}{path}", origin)
    if server.kind in NO_HTTP_RESPONSE:
        assert (error.response.status_code, bytes(error.response.body or b"")) == (403, b"")
    else:
        assert error.response.status_code == status
        assert bytes(error.response.body or b"") == f"{reason}\n".encode()
        assert error.response.headers["content-type"] == "text/plain; charset=utf-8"
    where = f" (e2e.refusals.{handler})" if handler else ""
    sent = 403 if server.kind in NO_HTTP_RESPONSE else status
    await logged(
        server, f"wsmanager refused a WebSocket handshake to '{path}'{where} with HTTP {sent}: {reason}"
    )


async def test_an_allowed_origin_still_opens_a_socket(server: ServerProcess) -> None:
    """The control: the same server admits a page of its own site."""
    origin = f"http://127.0.0.1:{server.port}"
    async with websockets.connect(f"{server.ws_url}/ws/open/", origin=origin) as ws:  # type: ignore[arg-type]
        assert '"rpc.connected"' in str(await asyncio.wait_for(ws.recv(), 10))
