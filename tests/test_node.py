"""``Node``: the process hub's reconciliation with a shared registry, its counters, and
its count of the sockets each client address holds (open, or parked here)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests import redis_support
from wsmanager import ConnectionInfo, RpcHandler, route, websocket_app
from wsmanager.node import Node
from wsmanager.node import _hub as hub_module
from wsmanager.observe import _counters as counters
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


# -- the count per client address ----------------------------------------------------------------


class Sock:
    """The part of a socket the node counts: an id and an entry (no eq: compared by identity)."""

    def __init__(self, socket_id: str, address: str | None = "10.0.0.1") -> None:
        self.id = socket_id
        self.info = ConnectionInfo(socket_id, "h", "n", address=address)


def test_the_address_count_follows_the_socket_object_through_a_takeover() -> None:
    """The old connection and the one resuming its session share an id, never a count."""
    node = Node()
    old, new, third = Sock("s1"), Sock("s1"), Sock("s2")
    assert node.reserve(old, "h", "10.0.0.1", cap=2)
    node.attach(old)
    assert node.reserve(new, "h", "10.0.0.1", cap=2)  # counted before it holds the id
    assert not node.reserve(third, "h", "10.0.0.1", cap=2)  # two: the cap
    node.attach(new)  # takes the id over: the old connection stops counting
    assert node.sockets_from("h", "10.0.0.1") == 1 and node.sockets["s1"] is new
    node.detach("s1", old)  # the old connection's own end touches neither the id nor the count
    assert node.sockets["s1"] is new and node.sockets_from("h", "10.0.0.1") == 1
    node.detach("s1", new)
    node.release(new)  # idempotent
    assert node.sockets_from("h", "10.0.0.1") == 0 and not node.sockets


def test_a_socket_that_never_held_an_id_stops_counting_when_released() -> None:
    node = Node()
    refused = Sock("")
    assert node.reserve(refused, "h", None, cap=1)
    assert not node.reserve(Sock(""), "h", None, cap=1)
    node.detach("", refused)  # a socket that was never attached: its count goes all the same
    assert node.sockets_from("h", None) == 0


def test_a_socket_that_gives_its_id_up_goes_on_counting() -> None:
    """A resume that failed after its claim goes on as a fresh socket: still one socket."""
    node = Node()
    sock = Sock("session")
    node.attach(sock)
    node.vacate("session", sock)
    assert "session" not in node.sockets and node.sockets_from("h", "10.0.0.1") == 1
    sock.id = "fresh"
    node.attach(sock)
    assert node.sockets_from("h", "10.0.0.1") == 1


def test_sockets_parked_here_count_until_taken_oldest_first_or_forgotten() -> None:
    node = Node()
    until = time.time() + 60
    for sid in ("p1", "p2", "p3"):
        node.note_parked("h", "10.0.0.1", sid, until, f"key-{sid}")
    node.attach(Sock("open"))
    assert node.sockets_from("h", "10.0.0.1") == 4 and node.sockets_from("h", "10.0.0.2") == 0
    assert node.take_oldest_parked("h", "10.0.0.1", spare="p1") == ("p2", until, "key-p2")
    assert node.is_parked_here("h", "10.0.0.1", "p1") and not node.is_parked_here("h", "10.0.0.1", "p2")
    node.forget_parked("h", "10.0.0.1", "p1")  # it resumed
    assert node.take_oldest_parked("h", "10.0.0.1") == ("p3", until, "key-p3")
    assert node.take_oldest_parked("h", "10.0.0.1") is None
    assert node.sockets_from("h", "10.0.0.1") == 1


def test_records_of_windows_that_ended_are_dropped_as_others_park() -> None:
    node = Node()
    node.note_parked("h", "a", "over", time.time() - 1, "k")
    node._pruned = 0.0  # the last pruning is long ago
    node.note_parked("h", "b", "on", time.time() + 60, "k")
    assert node.sockets_from("h", "a") == 0 and node.sockets_from("h", "b") == 1


class SlowlyNamingLayer:
    """A layer whose ``new_channel`` waits (as the Redis Cluster layer waits for Redis
    to confirm its subscription), or fails once."""

    def __init__(self, fail_first: bool = False) -> None:
        self.go = asyncio.Event()
        self.named = 0
        self.fail_first = fail_first

    async def new_channel(self, prefix: str) -> str:
        await self.go.wait()
        self.named += 1
        if self.fail_first and self.named == 1:
            raise ConnectionError("Redis is down")
        return f"{prefix}.slow!{self.named}"


async def test_callers_of_start_meanwhile_wait_for_the_node_s_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sockets opening while the layer names the node's channel get its real id,
    never the empty one a socket would then be registered under."""
    layer = SlowlyNamingLayer()
    monkeypatch.setattr(hub_module, "get_channel_layer", lambda alias: layer)
    node = Node()
    first = asyncio.ensure_future(node.start())
    others = [asyncio.ensure_future(node.start()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in (first, *others))
    layer.go.set()
    assert {await task for task in (first, *others)} == {"wsmanager.node.slow!1"}
    assert layer.named == 1


async def test_a_start_whose_layer_failed_to_name_the_channel_is_tried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    layer = SlowlyNamingLayer(fail_first=True)
    layer.go.set()
    monkeypatch.setattr(hub_module, "get_channel_layer", lambda alias: layer)
    node = Node()
    with pytest.raises(ConnectionError):
        await node.start()
    assert await node.start() == "wsmanager.node.slow!2"


async def test_a_cancelled_first_start_does_not_cancel_the_callers_waiting_on_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A socket whose handshake is abandoned while the layer names the node's channel
    does not take the sockets opening at the same time down with it: they start again."""
    layer = SlowlyNamingLayer()
    monkeypatch.setattr(hub_module, "get_channel_layer", lambda alias: layer)
    node = Node()
    first = asyncio.ensure_future(node.start())
    await asyncio.sleep(0)
    waiting = asyncio.ensure_future(node.start())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    layer.go.set()
    assert await waiting == "wsmanager.node.slow!1"
    assert first.cancelled()
