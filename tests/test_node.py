"""``Node``: the process hub's background loops and its reconciliation with a shared registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests import redis_support
from wsmanager import RpcHandler, route, websocket_app
from wsmanager import node as node_module
from wsmanager.node import Node, get_node
from wsmanager.testing import RpcCommunicator

redis_url = redis_support.redis_url


class Joiner(RpcHandler):
    """Joins a group during its handshake, like most real handlers."""

    name = "test-node-joiner"

    async def on_connect(self) -> None:
        await self.join("everyone")


app = websocket_app([route("ws/join/", Joiner)], auth=False)


@pytest.fixture
async def fast_heartbeat_on_redis(redis_url: str) -> AsyncIterator[None]:
    """Redis registry with a 40 ms heartbeat, so reconciliation runs during handshakes."""
    async with redis_support.redis_registry(redis_url, node_ttl=5, heartbeat=0.04):
        yield


@pytest.mark.redis
@pytest.mark.usefixtures("fast_heartbeat_on_redis")
async def test_reconciliation_never_undoes_a_join_made_during_the_handshake() -> None:
    """40 sockets joining in on_connect while heartbeats reconcile: all 40 stay in the group."""
    clients = [RpcCommunicator(app, "/ws/join/", timeout=10) for _ in range(40)]
    for _ in range(3):  # several bursts, each with heartbeats running throughout
        results = await asyncio.gather(*(c.connect() for c in clients))
        assert all(accepted for accepted, _ in results)
        await asyncio.sleep(0.1)  # a few more heartbeats after the burst
        members = await Joiner.manager.agroup_members("everyone")
        assert sorted(members) == sorted(c.id for c in clients)
        assert get_node().stats["restored"] == 0
        await asyncio.gather(*(c.disconnect() for c in clients))
        clients = [RpcCommunicator(app, "/ws/join/", timeout=10) for _ in range(40)]


# -- background loops stop even when a library loses their cancellation ----------------------------


class LosesCancellation:
    """Stands in for a call whose first CancelledError never reaches the caller.

    Python 3.11's ``asyncio.wait_for`` (around every redis-py write) does
    that when the cancel arrives as its inner call completes. Later calls
    let cancellation through, so a failing test does not leave a task behind.
    """

    shared = False

    def __init__(self) -> None:
        self.calls = 0
        self.entered = asyncio.Event()

    async def _lose_one_cancel(self) -> None:
        self.calls += 1
        self.entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if self.calls > 1:
                raise

    async def node_alive(self, node_id: str) -> None:
        await self._lose_one_cancel()

    async def take_departures(self, limit: int = 1000) -> list[object]:
        return []

    async def receive(self, channel: str) -> dict[str, str]:
        await self._lose_one_cancel()
        return {"type": "wsmanager.unknown"}


async def cancel_and_wait(task: asyncio.Task[None], culprit: LosesCancellation) -> None:
    await culprit.entered.wait()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5.0)
    assert task in done, "the loop kept running after it was cancelled"
    assert culprit.calls == 1


async def test_heartbeat_loop_ends_when_its_cancellation_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """A heartbeat cancelled inside a call that swallows the CancelledError still ends."""
    culprit = LosesCancellation()
    monkeypatch.setattr(node_module, "get_registry", lambda: culprit)
    node = Node()
    node.id = "test-node"
    await cancel_and_wait(asyncio.ensure_future(node._heartbeat_loop(0.01)), culprit)


async def test_read_loop_ends_when_its_cancellation_is_lost() -> None:
    """A channel read cancelled inside a call that swallows the CancelledError still ends."""
    culprit = LosesCancellation()
    node = Node()
    node.id = "test-node"
    node._layer = culprit
    await cancel_and_wait(asyncio.ensure_future(node._read_loop()), culprit)
