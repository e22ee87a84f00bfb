"""The node's index of its own sockets per group, and group delivery from it: what a
group broadcast on a shared registry uses instead of the member list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests import redis_support
from wsmanager import ConnectionInfo, RpcHandler, route, websocket_app
from wsmanager.exceptions import RegistryUnavailable
from wsmanager.node import Node
from wsmanager.node._heartbeat import Upkeep
from wsmanager.node._hub import get_node
from wsmanager.observe import _counters as counters
from wsmanager.registry import get_registry
from wsmanager.testing import RpcCommunicator

redis_url = redis_support.redis_url


class Writer:
    def __init__(self, accept: bool = True) -> None:
        self.got: list[Any] = []
        self.accept = accept

    def push(self, message: Any) -> bool:
        if self.accept:
            self.got.append(message)
        return self.accept


class Sock:
    """The part of a socket the node indexes and writes to (compared by identity)."""

    def __init__(self, socket_id: str, *groups: str, handler: str = "h", accept: bool = True) -> None:
        self.id = socket_id
        self.info = ConnectionInfo(socket_id, handler, "n", groups=frozenset(groups))
        self.writer = Writer(accept)


def test_the_index_follows_attach_reindex_detach_and_vacate() -> None:
    node = Node()
    a, b, c = Sock("a", "room", "lobby"), Sock("b", "room"), Sock("c", "room", handler="other")
    for sock in (a, b, c):
        node.attach(sock)
    assert node.group_here("h", "room") == {"a", "b"}
    assert node.group_here("h", "lobby") == {"a"}
    assert node.group_here("other", "room") == {"c"}
    assert node.group_here("h", "nope") == frozenset()
    b.info = b.info.without_group("room").with_group("lobby")
    assert node.group_here("h", "room") == {"a", "b"}  # not reindexed yet: the old groups
    node.reindex(b)
    assert node.group_here("h", "room") == {"a"} and node.group_here("h", "lobby") == {"a", "b"}
    node.detach("a", a)
    assert node.group_here("h", "room") == frozenset() and node.group_here("h", "lobby") == {"b"}
    node.vacate("b", b)
    assert node.group_here("h", "lobby") == frozenset()
    node.reindex(b)  # no longer holds its id here: not indexed again
    assert node.group_here("h", "lobby") == frozenset()
    assert node._members == {("other", "room"): {"c"}}  # nothing left behind


def test_a_socket_taking_an_id_over_replaces_the_old_one_in_the_index() -> None:
    node = Node()
    old, new = Sock("s", "room"), Sock("s", "lobby")
    node.attach(old)
    node.attach(new)
    assert node.group_here("h", "room") == frozenset() and node.group_here("h", "lobby") == {"s"}
    node.detach("s", old)  # the old connection's end leaves the new one indexed
    assert node.group_here("h", "lobby") == {"s"}
    node.reindex_all()
    assert node.group_here("h", "lobby") == {"s"}


def test_delivery_from_the_index_skips_the_excluded_and_counts_what_is_missing() -> None:
    node = Node()
    a, b, full, other = Sock("a", "room"), Sock("b", "room"), Sock("f", "room", accept=False), Sock("o")
    for sock in (a, b, full, other):
        node.attach(sock)
    message = {"type": "websocket.send", "text": "hi"}
    before = counters.stats()
    # the registry counted 2 (b excluded): a took it, f refused it (its writer counts that)
    assert node.deliver_group_here("h", "room", message, {"b"}, expect=2) == 1
    assert a.writer.got == [message] and b.writer.got == [] and other.writer.got == []
    after = counters.stats()
    assert after.get("delivered", 0) - before.get("delivered", 0) == 1
    assert after.get("dropped_unknown", 0) == before.get("dropped_unknown", 0)  # found both
    assert node.deliver_group_here("h", "room", message, (), expect=5) == 2
    assert counters.stats().get("dropped_unknown", 0) - after.get("dropped_unknown", 0) == 2


# -- on a shared registry, through real handlers ------------------------------------------------


class Member(RpcHandler):
    handler_name = "test-node-index-member"

    async def on_connect(self) -> None:
        await self.join("room")


class Fresh(Member):
    """A handler of its own, so that its group's repair is not one a test before it
    already made within the second (repairs are at most once a second per group)."""

    handler_name = "test-node-index-fresh"


app = websocket_app([route("ws/member/", Member), route("ws/fresh/", Fresh)], auth=False)


async def news(client: RpcCommunicator) -> dict[str, Any]:
    """The next ``news`` notification (others, such as ``rpc.connected``, skipped)."""
    while True:
        note = await client.next_notification()
        if note.get("method") == "news":
            return note


@pytest.fixture
async def on_redis(redis_url: str) -> AsyncIterator[None]:
    async with redis_support.redis_registry(redis_url, node_ttl=30, heartbeat=20):
        yield


@pytest.mark.redis
@pytest.mark.usefixtures("on_redis")
async def test_a_broadcast_reads_the_groups_nodes_not_its_members(monkeypatch: pytest.MonkeyPatch) -> None:
    """notify_group on Redis: members get it (but the excluded), the member list is not read,
    and the node index follows joins and leaves made through the manager."""
    clients = [RpcCommunicator(app, "/ws/member/", timeout=10) for _ in range(3)]
    for client in clients:
        assert (await client.connect())[0]
    registry = get_registry()
    assert await registry.group_nodes(Member.handler_name, "room") == {get_node().id: 3}

    async def no_member_list(*args: Any, **kwargs: Any) -> list[str]:
        raise AssertionError("a broadcast read the member list")

    monkeypatch.setattr(registry, "group_members", no_member_list)
    taken = await Member.manager.anotify_group("room", "news", 1, exclude=[clients[0].id])
    assert taken == 2
    for client in clients[1:]:
        assert (await news(client))["params"] == [1]
    await Member.manager.aremove_from_group(clients[1].id, "room")
    assert get_node().group_here(Member.handler_name, "room") == {clients[0].id, clients[2].id}
    assert await Member.manager.anotify_group("room", "news", 2) == 2
    for client in (clients[0], clients[2]):
        assert (await news(client))["params"] == [2]
    await Member.manager.anotify(clients[1].id, "news", "marker")  # FIFO: any "news 2" came first
    await Member.manager.anotify(clients[0].id, "news", "marker")  # excluded from 1: it came first
    assert (await news(clients[1]))["params"] == ["marker"]
    assert (await news(clients[0]))["params"] == ["marker"]
    monkeypatch.undo()  # the repair below reads the member list, once
    await registry.group_add(Member.handler_name, "room", clients[1].id)  # behind the manager's back
    assert clients[1].id not in get_node().group_here(Member.handler_name, "room")
    assert await Member.manager.anotify_group("room", "news", 3) == 3  # the index disagreed: repaired
    for client in clients:
        assert (await news(client))["params"] == [3]
    assert clients[1].id in get_node().group_here(Member.handler_name, "room")
    for client in clients:
        await client.disconnect()
    assert await registry.group_nodes(Member.handler_name, "room") == {}


@pytest.mark.redis
@pytest.mark.usefixtures("on_redis")
async def test_a_repair_keeps_the_groups_of_sockets_the_registry_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After Redis lost its data (restarted empty), a broadcast finds the index and the
    registry disagreeing; the repair must not take the groups away from the sockets the
    registry no longer knows (the heartbeat re-adds them with those groups), while a socket
    the registry holds here and outside the group is taken out of the index."""

    async def no_reconcile(*args: Any) -> None:  # the heartbeat would re-add the lost socket
        return None

    monkeypatch.setattr(Upkeep, "_reconcile", no_reconcile)
    clients = [RpcCommunicator(app, "/ws/fresh/", timeout=10) for _ in range(2)]
    for client in clients:
        assert (await client.connect())[0]
    lost, left = clients
    registry = get_registry()
    await registry.remove(Fresh.handler_name, lost.id)  # as if Redis forgot it
    await registry.group_discard(Fresh.handler_name, "room", left.id)  # behind the manager's back
    assert await registry.group_nodes(Fresh.handler_name, "room") == {}
    assert await Fresh.manager.anotify_group("room", "news", 1) == 2  # the index's view, then repaired
    for client in clients:
        assert (await news(client))["params"] == [1]
    here = get_node().group_here(Fresh.handler_name, "room")
    assert lost.id in here and "room" in get_node().sockets[lost.id].info.groups
    assert left.id not in here and "room" not in get_node().sockets[left.id].info.groups
    for client in clients:
        await client.disconnect()


@pytest.mark.redis
@pytest.mark.usefixtures("on_redis")
async def test_a_broadcast_the_registry_cannot_route_reaches_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis down: the broadcast fails before any member has the frame, so the caller's
    error never hides a half-done broadcast."""
    client = RpcCommunicator(app, "/ws/member/", timeout=10)
    assert (await client.connect())[0]
    registry = get_registry()

    async def down(*args: Any, **kwargs: Any) -> dict[str, int]:
        raise RegistryUnavailable("redis is down")

    monkeypatch.setattr(registry, "group_nodes", down)
    with pytest.raises(RegistryUnavailable):
        await Member.manager.anotify_group("room", "news", "lost")
    monkeypatch.undo()
    await Member.manager.anotify(client.id, "news", "marker")
    assert (await news(client))["params"] == ["marker"]  # nothing came before it
    await client.disconnect()
