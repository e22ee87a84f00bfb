"""The RPC execution model against every real server: no deadlock, no head-of-line blocking."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.e2e.client import Peer
from tests.servers import ServerProcess, server_process
from wsmanager_client import connect

pytestmark = pytest.mark.e2e


async def test_a_method_awaiting_invoke_on_its_own_caller_gets_the_result(
    model_server: ServerProcess,
) -> None:
    """ask_client invokes the calling socket and returns its answer: no deadlock."""
    asked: list[int] = []

    def double(value: int) -> int:
        asked.append(value)
        return 2 * value

    async with connect(f"{model_server.ws_url}/ws/model/", handlers={"double": double}) as client:
        assert await client.invoke("ask_client", 21) == 42
    assert asked == [21]


@pytest.fixture(scope="module")
def own_model_server(server_kind: str) -> Iterator[ServerProcess]:
    """The RPC model on a process of this module's own: its sockets are counted whole."""
    app = "tests.e2e.rpc_app:application"
    with server_process(server_kind, app=app, env={"DEMO_DB": ":memory:"}) as server:
        yield server


async def test_a_slow_call_blocks_neither_other_sockets_nor_its_own_disconnect(
    own_model_server: ServerProcess,
) -> None:
    """While one socket's call sleeps, others are served and its close is handled."""
    slow = await Peer.open(f"{own_model_server.ws_url}/ws/model/")
    other = await Peer.open(f"{own_model_server.ws_url}/ws/model/")
    await slow.send_raw(json.dumps({"jsonrpc": "2.0", "method": "sleep", "params": [60], "id": 1}))
    assert await other.call("count") == 2
    assert await slow.call("rpc.ping") == "pong"  # answered at once, not queued behind the call
    await slow.close()
    for _ in range(100):
        if await other.call("count") == 1:
            break
        await asyncio.sleep(0.05)
    assert await other.call("count") == 1
    await other.close()
