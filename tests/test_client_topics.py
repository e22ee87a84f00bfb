"""wsmanager_client's topics: the sans-I/O rules of wsmanager_client.topics, then the client
against a scripted server playing docs/protocol.md's topics (subscribe, replay, refusals,
reconnection). The client against the real demo server is tests/e2e/test_topics_clients_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from wsmanager_client import (
    Client,
    NotConnected,
    Position,
    Publication,
    RemoteError,
    Subscription,
    Unrecovered,
    connect,
)
from wsmanager_client.topics import Delivery, Subscriptions, parse_position

FAST = {"reconnect_delay": 0.01, "reconnect_max_delay": 0.02, "heartbeat_interval": None, "timeout": 5}


# --- the rules, without I/O -------------------------------------------------------------------


async def nothing(_: Subscription) -> None:
    return None


async def subscription(topic: str = "tasks", since: Position | None = None) -> Subscription:
    return Subscription(
        topic, lambda p: None, since=since, on_unrecovered=None, on_error=None, unsubscribe=nothing
    )


def pub(offset: int, epoch: str = "e1", topic: str = "tasks") -> Publication:
    return Publication(topic, offset, epoch, "created", {"id": offset})


@pytest.mark.parametrize(
    ("value", "position"),
    [
        ({"offset": 3, "epoch": "e"}, Position(3, "e")),
        (Position(0, ""), Position(0, "")),
        ({"offset": -1, "epoch": "e"}, None),
        ({"offset": True, "epoch": "e"}, None),
        ({"offset": 1.0, "epoch": "e"}, None),
        ({"offset": 1}, None),
        ({"offset": 1, "epoch": 2}, None),
        ([1, "e"], None),
        (None, None),
    ],
)
def test_positions_are_parsed_strictly(value: Any, position: Position | None) -> None:
    assert parse_position(value) == position


async def test_offsets_at_or_below_the_position_are_duplicates() -> None:
    sub = await subscription()
    assert sub.accepted({"offset": 4, "epoch": "e1", "recovered": False}, None) == Delivery()
    assert sub.position == Position(4, "e1") and sub.active
    ready = [[p.offset for p in sub.deliver(pub(n)).ready] for n in (5, 5, 3, 4, 6)]
    assert ready == [[5], [], [], [], [6]]
    assert sub.duplicates == 3 and sub.position == Position(6, "e1")


async def test_a_gap_is_held_until_filled_and_asks_for_a_repair() -> None:
    """Offsets grow by one: 9 after 6 waits for 7 and 8; each step says whether a gap remains."""
    sub = await subscription()
    sub.accepted({"offset": 6, "epoch": "e1", "recovered": False}, None)
    assert sub.deliver(pub(9)) == Delivery(repair=True)
    assert sub.deliver(pub(9)) == Delivery(repair=True) and sub.duplicates == 1
    assert sub.deliver(pub(7)) == Delivery([pub(7)], repair=True)
    assert sub.deliver(pub(8)) == Delivery([pub(8), pub(9)], repair=False)
    assert sub.position == Position(9, "e1") and sub.held == {}
    # The repair's answer jumps past what is held: the held ones are dropped, counted.
    assert sub.deliver(pub(11)) == Delivery(repair=True)
    assert sub.accepted({"offset": 12, "epoch": "e1", "recovered": True}, Position(9, "e1")) == Delivery()
    assert sub.held == {} and sub.duplicates == 2


async def test_an_answer_behind_the_publications_keeps_the_later_position() -> None:
    """Live publications may arrive before the subscribe answer: the position is the greater one."""
    sub = await subscription(since=Position(2, "e1"))
    assert sub.deliver(pub(3)).ready == [pub(3)] and sub.deliver(pub(4)).ready == [pub(4)]
    assert sub.accepted({"offset": 3, "epoch": "e1", "recovered": True}, Position(2, "e1")) == Delivery()
    assert sub.position == Position(4, "e1")


async def test_recovered_false_and_a_new_epoch_are_unrecovered() -> None:
    sub = await subscription(since=Position(2, "old"))
    assert sub.start_from() == Position(2, "old")
    unrecovered = sub.accepted(
        {"offset": 9, "epoch": "new", "recovered": False, "state": [1]}, Position(2, "old")
    ).unrecovered
    assert unrecovered == Unrecovered("tasks", Position(2, "old"), Position(9, "new"), "history")
    assert sub.state == [1] and sub.start_from() == Position(9, "new")
    # A missing `recovered` is not a recovery either.
    again = await subscription()
    assert again.accepted({"offset": 1, "epoch": "e"}, Position(0, "e")).unrecovered is not None
    # While subscribed, a publication from another epoch: the history was lost on the server.
    assert sub.deliver(pub(1, "newer")) == Delivery(
        [pub(1, "newer")], Unrecovered("tasks", Position(9, "new"), Position(1, "newer"), "epoch")
    )


async def test_the_registry_routes_by_topic_and_refuses_what_it_cannot_route() -> None:
    subs = Subscriptions()
    sub = await subscription()
    subs.add(sub)
    with pytest.raises(ValueError, match="already subscribed"):
        subs.add(await subscription())
    params = {"topic": "tasks", "offset": 1, "epoch": "e", "event": "created", "data": {"id": 1}}
    assert subs.route(params) == (sub, Publication("tasks", 1, "e", "created", {"id": 1}))
    for bad in (None, [], {**params, "topic": "other"}, {**params, "offset": "1"}, {**params, "epoch": None}):
        assert subs.route(bad) is None
    assert subs.remove(sub) and not subs.remove(sub)
    assert sub.closed and len(subs) == 0 and subs.route(params) is None


# --- the client against a scripted server -----------------------------------------------------------


class Peer:
    """One connection accepted by the scripted server, driven by the test."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws

    async def recv(self, method: str) -> dict[str, Any]:
        """The next message from the client with this method (pings are answered and skipped)."""
        async with asyncio.timeout(5):
            while True:
                message = json.loads(await self.ws.recv())
                if message.get("method") == method:
                    return dict(message)

    async def answer(self, request: dict[str, Any], **result: Any) -> None:
        await self.ws.send(json.dumps({"jsonrpc": "2.0", "result": result, "id": request["id"]}))

    async def refuse(self, request: dict[str, Any], code: int, message: str) -> None:
        error = {"code": code, "message": message}
        await self.ws.send(json.dumps({"jsonrpc": "2.0", "error": error, "id": request["id"]}))

    async def publish(
        self, offset: int, epoch: str = "e1", topic: str = "tasks", event: str = "created"
    ) -> None:
        params = {"topic": topic, "offset": offset, "epoch": epoch, "event": event, "data": {"id": offset}}
        await self.ws.send(json.dumps({"jsonrpc": "2.0", "method": "rpc.publication", "params": params}))

    def drop(self) -> None:
        assert self.ws.transport is not None
        self.ws.transport.abort()


class Server:
    def __init__(self) -> None:
        self.peers: asyncio.Queue[Peer] = asyncio.Queue()
        self.url = ""
        self._count = 0

    async def handler(self, ws: ServerConnection) -> None:
        self._count += 1
        hello = {"jsonrpc": "2.0", "method": "rpc.connected", "params": {"id": f"s{self._count}"}}
        await ws.send(json.dumps(hello))
        await self.peers.put(Peer(ws))
        await ws.wait_closed()

    async def next_peer(self) -> Peer:
        async with asyncio.timeout(5):
            return await self.peers.get()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    scripted = Server()
    async with serve(scripted.handler, "127.0.0.1", 0) as running:
        port = next(iter(running.sockets)).getsockname()[1]
        scripted.url = f"ws://127.0.0.1:{port}/ws/live/"
        yield scripted


class Got:
    """What the callbacks received, with a way to wait for it."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.changed = asyncio.Event()

    def __call__(self, item: Any) -> None:
        self.items.append(item)
        self.changed.set()

    async def until(self, check: Callable[[list[Any]], bool]) -> list[Any]:
        async with asyncio.timeout(5):
            while not check(self.items):
                self.changed.clear()
                await self.changed.wait()
        return self.items


def offsets(items: list[Any]) -> list[int]:
    return [p.offset for p in items if isinstance(p, Publication)]


async def test_subscribe_delivers_once_in_order_and_unsubscribe_stops(server: Server) -> None:
    got = Got()
    async with connect(server.url, **FAST) as client:
        peer = await server.next_peer()
        task = asyncio.create_task(client.subscribe("tasks", got, on_unrecovered=got))
        request = await peer.recv("rpc.subscribe")
        assert request["params"] == {"topic": "tasks"}
        await peer.answer(request, topic="tasks", offset=4, epoch="e1", recovered=False, state={"n": 4})
        sub = await task
        assert (sub.topic, sub.position, sub.state, sub.active) == (
            "tasks",
            Position(4, "e1"),
            {"n": 4},
            True,
        )
        assert client.subscriptions == {"tasks": sub}
        for n in (5, 6, 6, 4, 7):
            await peer.publish(n)
        await got.until(lambda items: len(items) == 3)
        assert got.items == [
            Publication("tasks", 5, "e1", "created", {"id": 5}),
            Publication("tasks", 6, "e1", "created", {"id": 6}),
            Publication("tasks", 7, "e1", "created", {"id": 7}),
        ]
        assert client.stats.publications_duplicate == 2 and sub.duplicates == 2

        stop = asyncio.create_task(sub.unsubscribe())
        request = await peer.recv("rpc.unsubscribe")
        assert request["params"] == {"topic": "tasks"}
        await peer.publish(8)  # already on its way: dropped, counted
        await peer.answer(request, topic="tasks")
        await stop
        await peer.publish(9)
        ping = asyncio.create_task(client.invoke("rpc.ping"))
        await peer.answer(await peer.recv("rpc.ping"))  # a round trip: both publications were read
        await ping
        assert offsets(got.items) == [5, 6, 7] and client.stats.publications_ignored == 2
        assert sub.closed and client.subscriptions == {}
        await sub.unsubscribe()  # again: nothing


@pytest.mark.parametrize("code", [-32010, -32011, -32012, -32602])
async def test_refusals_raise_with_their_code(server: Server, code: int) -> None:
    async with connect(server.url, **FAST) as client:
        peer = await server.next_peer()
        task = asyncio.create_task(client.subscribe("user.7", Got()))
        await peer.refuse(await peer.recv("rpc.subscribe"), code, "Refused")
        with pytest.raises(RemoteError) as caught:
            await task
        assert (caught.value.code, caught.value.method) == (code, "rpc.subscribe")
        assert client.subscriptions == {}


async def test_a_reconnection_resubscribes_from_the_position_and_drops_the_replayed(server: Server) -> None:
    """The replay (before the answer) repeats what was delivered: it is dropped; nothing unrecovered."""
    got = Got()
    async with connect(server.url, **FAST) as client:
        first = await server.next_peer()
        task = asyncio.create_task(client.subscribe("tasks", got, on_unrecovered=got))
        await first.answer(await first.recv("rpc.subscribe"), offset=10, epoch="e1", recovered=False)
        sub = await task
        await first.publish(11)
        await got.until(lambda items: len(items) == 1)
        first.drop()

        second = await server.next_peer()
        request = await second.recv("rpc.subscribe")
        assert request["params"] == {"topic": "tasks", "since": {"offset": 11, "epoch": "e1"}}
        for n in (11, 12, 13):
            await second.publish(n)
        await second.answer(request, offset=13, epoch="e1", recovered=True)
        await second.publish(14)
        await got.until(lambda items: len(items) == 4)
        assert offsets(got.items) == [11, 12, 13, 14]
        assert not any(isinstance(item, Unrecovered) for item in got.items)
        assert sub.position == Position(14, "e1") and client.stats.publications_duplicate == 1


async def test_recovered_false_calls_on_unrecovered(server: Server) -> None:
    got = Got()
    async with connect(server.url, **FAST) as client:
        peer = await server.next_peer()
        task = asyncio.create_task(
            client.subscribe("tasks", got, since={"offset": 3, "epoch": "old"}, on_unrecovered=got)
        )
        request = await peer.recv("rpc.subscribe")
        assert request["params"]["since"] == {"offset": 3, "epoch": "old"}
        await peer.answer(request, offset=40, epoch="new", recovered=False)
        sub = await task
        await got.until(lambda items: len(items) == 1)
        assert got.items == [Unrecovered("tasks", Position(3, "old"), Position(40, "new"), "history")]
        assert sub.position == Position(40, "new")


async def test_a_refused_resubscription_ends_it_and_tells_on_error(server: Server) -> None:
    errors = Got()
    async with connect(server.url, **FAST) as client:
        first = await server.next_peer()
        task = asyncio.create_task(client.subscribe("user.7", Got(), on_error=errors))
        await first.answer(await first.recv("rpc.subscribe"), offset=0, epoch="e1", recovered=False)
        sub = await task
        first.drop()
        second = await server.next_peer()
        await second.refuse(await second.recv("rpc.subscribe"), -32011, "Not authorized")
        (error,) = await errors.until(lambda items: len(items) == 1)
        assert isinstance(error, RemoteError) and error.code == -32011
        assert sub.closed and client.subscriptions == {}


async def test_subscribe_before_connect_waits_and_close_fails_it(server: Server) -> None:
    client = Client(server.url, **FAST)
    task = asyncio.create_task(client.subscribe("tasks", Got()))
    await asyncio.sleep(0)
    assert not task.done()
    await client.connect()
    peer = await server.next_peer()
    await peer.recv("rpc.subscribe")
    with pytest.raises(ValueError, match="already subscribed"):
        await client.subscribe("tasks", Got())
    await client.close()
    with pytest.raises(NotConnected) as caught:
        await task
    assert caught.value.reason == "closed"
    with pytest.raises(NotConnected):
        await client.subscribe("other", Got())
    with pytest.raises(TypeError, match="topic"):
        await client.subscribe("", Got())
    with pytest.raises(TypeError, match="since"):
        await client.subscribe("t", Got(), since={"offset": "1", "epoch": "e"})


async def test_coroutine_callbacks_run_one_after_another_in_order(server: Server) -> None:
    """A coroutine callback that awaits does not let the next publication overtake it."""
    seen: list[tuple[str, int]] = []
    done = asyncio.Event()

    async def slow(p: Publication) -> None:
        seen.append(("start", p.offset))
        for _ in range(3):
            await asyncio.sleep(0)
        seen.append(("end", p.offset))
        if p.offset == 3:
            done.set()

    async with connect(server.url, **FAST) as client:
        peer = await server.next_peer()
        task = asyncio.create_task(client.subscribe("tasks", slow))
        await peer.answer(await peer.recv("rpc.subscribe"), offset=0, epoch="e1", recovered=False)
        await task
        for n in (1, 2, 3):
            await peer.publish(n)
        async with asyncio.timeout(5):
            await done.wait()
    assert seen == [("start", 1), ("end", 1), ("start", 2), ("end", 2), ("start", 3), ("end", 3)]


async def test_a_gap_is_repaired_by_a_subscribe_from_the_position(server: Server) -> None:
    """A publication that skips ahead is held and the client subscribes again from its position;
    the late one and the replay fill the gap; the callback sees every offset once, in order."""
    got = Got()
    async with connect(server.url, **FAST) as client:
        peer = await server.next_peer()
        task = asyncio.create_task(client.subscribe("tasks", got))
        await peer.answer(await peer.recv("rpc.subscribe"), offset=10, epoch="e1", recovered=False)
        await task
        await peer.publish(11)
        await peer.publish(13)
        repair = await peer.recv("rpc.subscribe")
        assert repair["params"] == {"topic": "tasks", "since": {"offset": 11, "epoch": "e1"}}
        await peer.publish(12)  # late, live
        for n in (12, 13):  # the replay
            await peer.publish(n)
        await peer.answer(repair, offset=13, epoch="e1", recovered=True)
        await peer.publish(14)
        await got.until(lambda items: len(items) == 4)
        assert offsets(got.items) == [11, 12, 13, 14]
        assert client.stats.publications_duplicate == 2
