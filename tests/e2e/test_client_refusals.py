"""The Python client says why a server refused its handshake: the HTTP status (403, 404, ...) and
the server's reason when its answer has one, as attributes and in the message, on every server.

``tests/e2e/refusing_app.py`` refuses with the status and body a test asks for, through the
ASGI denial-response extension on the servers that offer it (all but daphne, which answers
403 without a body to every refusal); the demo refuses an Origin it does not allow.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.e2e.client import chat_url
from tests.servers import (
    ServerProcess,
    every_implementation,  # noqa: F401  (server_kind: also uvicorn's other implementations)
    server_process,
)
from wsmanager_client import Client, HandshakeRefused, NotConnected, Reconnecting, connect

pytestmark = pytest.mark.e2e

WAIT = 20.0  # a bound on each wait, so that a failure shows instead of hanging


@pytest.fixture(scope="module")
def refusing_server(server_kind: str) -> Iterator[ServerProcess]:
    server = server_process(server_kind, app="tests.e2e.refusing_app:app")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def denial_responses(refusing_server: ServerProcess) -> bool:
    """Whether this server lets an app answer a handshake with its own status and body."""

    async def ask() -> list[str]:
        async with ws_connect(f"{refusing_server.ws_url}/extensions/") as ws:
            extensions: list[str] = json.loads(await ws.recv())
        return extensions

    return "websocket.http.response" in asyncio.run(ask())


def refusal_url(server: ServerProcess, status: int, body: str = "", content_type: str = "") -> str:
    query = {"body": body, **({"type": content_type} if content_type else {})}
    return f"{server.ws_url}/status/{status}/?{urlencode(query)}"


async def refused(url: str, **options: Any) -> HandshakeRefused:
    with pytest.raises(HandshakeRefused) as info:
        await asyncio.wait_for(connect(url, reconnect=False, **options), WAIT)
    return info.value


@pytest.mark.parametrize(
    ("status", "body", "content_type", "detail"),
    [
        (403, "origin not allowed", "", "origin not allowed"),
        (404, "no such room:\n  lobby", "text/plain", "no such room: lobby"),
        (401, json.dumps({"reason": "log in first"}), "application/json", "log in first"),
        (429, json.dumps({"error": {"code": 7, "message": "slow down"}}), "application/json", "slow down"),
        (404, "<html><body><h1>Not Found</h1></body></html>", "text/html", ""),
        (503, "", "", ""),
    ],
    ids=["403-text", "404-multiline", "401-json", "429-json-error", "404-html-ignored", "503-no-body"],
)
async def test_a_refused_handshake_raises_with_its_status_and_the_servers_reason(
    refusing_server: ServerProcess,
    denial_responses: bool,
    status: int,
    body: str,
    content_type: str,
    detail: str,
) -> None:
    exc = await refused(refusal_url(refusing_server, status, body, content_type))
    if not denial_responses:  # daphne: every refusal is a 403 without a body
        status, detail = 403, ""
    assert (exc.status, exc.detail, exc.reason, exc.method) == (status, detail, "refused", "connect")
    assert isinstance(exc, NotConnected)
    expected = f"could not connect because the server refused the handshake: HTTP {status}"
    assert str(exc) == expected + (f": {detail}" if detail else "")


async def test_the_demo_refusing_an_origin_says_403(demo_server: ServerProcess) -> None:
    """The demo's own refusal (an Origin it does not allow) carries its status; the reason, when
    the server gives one, follows it."""
    exc = await refused(chat_url(demo_server, "refused"), origin="http://evil.example")
    assert exc.status == 403
    assert str(exc).startswith("could not connect because the server refused the handshake: HTTP 403")


async def test_while_retrying_the_events_and_queued_calls_say_the_status(
    refusing_server: ServerProcess, denial_responses: bool
) -> None:
    """Each failed attempt's Reconnecting event names the status and reason; when the client
    gives up, connect() and the calls queued meanwhile fail with HandshakeRefused."""
    events: list[Reconnecting] = []
    client = Client(
        refusal_url(refusing_server, 404, "no such room"),
        reconnect_delay=0.01,
        max_reconnect_attempts=2,
        on_reconnecting=events.append,
    )
    queued = asyncio.create_task(client.invoke("who"))
    with pytest.raises(HandshakeRefused) as info:
        await asyncio.wait_for(client.connect(), WAIT)
    with pytest.raises(HandshakeRefused) as call:
        await asyncio.wait_for(queued, WAIT)
    reason = (
        "handshake refused: HTTP 404: no such room" if denial_responses else "handshake refused: HTTP 403"
    )
    assert [(e.attempt, e.code, e.reason) for e in events] == [(1, 1006, reason), (2, 1006, reason)]
    assert info.value.status == call.value.status == (404 if denial_responses else 403)
    assert call.value.method == "who"
    assert str(call.value).startswith("not connected: 'who' was not sent because the server refused")
    assert info.value.__cause__ is not None  # websockets' InvalidStatus, as before
