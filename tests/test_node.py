"""``Node``: the process hub's reconciliation with a shared registry, and its counters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests import redis_support
from wsmanager import RpcHandler, counters, route, websocket_app
from wsmanager.registry import get_registry
from wsmanager.testing import RpcCommunicator

redis_url = redis_support.redis_url


class Joiner(RpcHandler):
    """Joins a group during its handshake, like most real handlers."""

    handler_name = "test-node-joiner"

    async def on_connect(self) -> None:
        await self.join("everyone")


app = websocket_app([route("ws/join/", Joiner)], auth=False)


@pytest.fixture
async def fast_heartbeat_on_redis(redis_url: str) -> AsyncIterator[None]:
    """Redis registry with a 40 ms heartbeat, so reconciliation runs during handshakes."""
    async with redis_support.redis_registry(redis_url, node_ttl=5, heartbeat=0.04):
        yield


async def heartbeats(count: int, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Yields each time the registry has seen ``count`` more heartbeats (``node_alive``)."""
    registry = get_registry()
    real = registry.node_alive
    beats = asyncio.Event()
    seen = 0

    async def counted(node: str) -> None:
        nonlocal seen
        await real(node)
        seen += 1
        beats.set()

    monkeypatch.setattr(registry, "node_alive", counted)
    while True:
        target = seen + count
        while seen < target:
            beats.clear()
            await asyncio.wait_for(beats.wait(), 10)
        yield


@pytest.mark.redis
@pytest.mark.usefixtures("fast_heartbeat_on_redis")
async def test_reconciliation_never_undoes_a_join_made_during_the_handshake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """40 sockets joining in on_connect while heartbeats reconcile: all 40 stay in the group."""
    clients = [RpcCommunicator(app, "/ws/join/", timeout=10) for _ in range(40)]
    later = heartbeats(3, monkeypatch)
    for _ in range(3):  # several bursts, each with heartbeats running throughout
        results = await asyncio.gather(*(c.connect() for c in clients))
        assert all(accepted for accepted, _ in results)
        await anext(later)  # a few more heartbeats (each reconciles) after the burst
        members = await Joiner.manager.agroup_members("everyone")
        assert sorted(members) == sorted(c.id for c in clients)
        assert counters.stats().get("restored", 0) == 0
        await asyncio.gather(*(c.disconnect() for c in clients))
        clients = [RpcCommunicator(app, "/ws/join/", timeout=10) for _ in range(40)]
