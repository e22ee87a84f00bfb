"""The Python client's close on purpose: ``rpc.close`` before its close frame, against a
scripted ``websockets`` server on loopback (the real servers: tests/e2e/test_close_on_purpose.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from wsmanager.client import connect

WAIT = 10.0  # a bound on each wait, never a threshold


class Recorder:
    """A server that greets, then keeps what the client sends and how it closed."""

    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.closed: asyncio.Future[tuple[int | None, str]] = asyncio.get_running_loop().create_future()

    async def __call__(self, ws: ServerConnection) -> None:
        hello = {"jsonrpc": "2.0", "method": "rpc.connected", "params": {"id": "s1"}}
        await ws.send(json.dumps(hello))
        try:
            async for text in ws:
                self.frames.append(json.loads(text))
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        self.closed.set_result((None, "") if rcvd is None else (rcvd.code, rcvd.reason))


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    record = Recorder()
    server = await serve(record, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    yield record, f"ws://127.0.0.1:{port}/"
    server.close()
    await server.wait_closed()


async def test_close_says_rpc_close_before_its_close_frame(recorder: tuple[Recorder, str]) -> None:
    record, url = recorder
    client = await connect(url, heartbeat_interval=None)
    await client.close()
    assert await asyncio.wait_for(record.closed, WAIT) == (1000, "")
    assert record.frames == [{"jsonrpc": "2.0", "method": "rpc.close"}]


async def test_close_with_an_application_code_says_it_in_rpc_close(recorder: tuple[Recorder, str]) -> None:
    record, url = recorder
    client = await connect(url, heartbeat_interval=None)
    await client.close(4001, "done")
    assert await asyncio.wait_for(record.closed, WAIT) == (4001, "done")
    assert record.frames == [{"jsonrpc": "2.0", "method": "rpc.close", "params": {"code": 4001}}]


async def test_a_closed_client_says_nothing_more(recorder: tuple[Recorder, str]) -> None:
    record, url = recorder
    async with connect(url, heartbeat_interval=None) as client:
        pass
    await asyncio.wait_for(record.closed, WAIT)
    await client.close()  # closed already: nothing more is sent
    assert record.frames == [{"jsonrpc": "2.0", "method": "rpc.close"}]
