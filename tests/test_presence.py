"""Users and presence: per-user sending, ``on_presence`` transitions, crash and stop departures.

Sockets log in through a tiny middleware that puts a real (unsaved) Django
``User`` with the primary key of the ``?user=<pk>`` query into the scope,
as Channels' ``AuthMiddlewareStack`` would. Tests marked with the
``backend`` fixture run against the in-memory and the Redis registry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from tests import redis_support
from tests.users import with_user
from wsmanager import (
    ConnectionInfo,
    InvokeTimeout,
    Member,
    RemoteError,
    RpcHandler,
    route,
    rpc,
    websocket_app,
)
from wsmanager._presence import announce, members_of
from wsmanager.node import get_node
from wsmanager.registry import get_registry
from wsmanager.registry.redis import RedisRegistry
from wsmanager.testing import RpcCommunicator

redis_url = redis_support.redis_url

#: (handler name, group, event, member) in the order on_presence heard them.
EVENTS: list[tuple[str, str, str, Member]] = []


class PresenceHandler(RpcHandler):
    """Joins ``room.<room>`` on connect; its hook records and tells the room."""

    handler_name = "tests.presence"

    async def on_connect(self) -> None:
        await self.join(f"room.{self.info.path_kwargs['room']}")

    @rpc
    async def enter(self, group: str) -> None:
        await self.join(group)

    @rpc
    async def exit(self, group: str) -> None:
        await self.leave(group)

    @classmethod
    async def on_presence(cls, group: str, event: str, member: Member) -> None:
        EVENTS.append((cls.handler_name, group, event, member))
        await cls.manager.anotify_group(group, event, key=member.key, exclude=member.socket_ids)


class BrokenHookHandler(PresenceHandler):
    """Its ``on_presence`` records, then raises."""

    handler_name = "tests.presence.broken"

    @classmethod
    async def on_presence(cls, group: str, event: str, member: Member) -> None:
        EVENTS.append((cls.handler_name, group, event, member))
        raise RuntimeError("hook failed")


class NoHookHandler(RpcHandler):
    """Joins a room, has no ``on_presence``."""

    handler_name = "tests.presence.nohook"

    async def on_connect(self) -> None:
        await self.join(f"room.{self.info.path_kwargs['room']}")


application = with_user(
    websocket_app(
        [
            route("ws/presence/<str:room>/", PresenceHandler),
            route("ws/broken/<str:room>/", BrokenHookHandler),
            route("ws/nohook/<str:room>/", NoHookHandler),
        ],
        auth=False,
    )
)

manager = PresenceHandler.manager


def path(room: str = "lobby", user: int | None = None, kind: str = "presence") -> str:
    return f"/ws/{kind}/{room}/" + ("" if user is None else f"?user={user}")


@asynccontextmanager
async def sockets(*paths: str) -> AsyncIterator[list[RpcCommunicator]]:
    """Open sockets one after another; those still open are closed on exit."""
    opened: list[RpcCommunicator] = []
    try:
        for p in paths:
            client = RpcCommunicator(application, p)
            await client.__aenter__()
            opened.append(client)
        yield opened
    finally:
        for client in opened:
            await client.disconnect()


def events(event: str | None = None, group: str = "room.lobby") -> list[tuple[str, str]]:
    """(event, member key) of the recorded events in ``group`` (of one kind if given)."""
    return [(e, m.key) for _, g, e, m in EVENTS if g == group and event in (None, e)]


async def until(condition: Any, timeout: float = 5.0) -> None:
    """Wait until ``condition()`` is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


@pytest.fixture(autouse=True)
def _clean_events() -> Iterator[None]:
    EVENTS.clear()
    yield
    EVENTS.clear()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Runs the test on the in-memory registry, then on Redis."""
    if request.param == "memory":
        yield "memory"
        return
    async with redis_support.redis_registry(request.getfixturevalue("redis_url")):
        yield "redis"


@pytest.fixture
async def on_redis(redis_url: str) -> AsyncIterator[None]:
    """Runs the test on the Redis registry only."""
    async with redis_support.redis_registry(redis_url):
        yield


# -- Member -------------------------------------------------------------------------------------


def info(sid: str, user_id: str | None = None, at: float = 0.0, **meta: Any) -> ConnectionInfo:
    return ConnectionInfo(id=sid, handler="h", node="n", user_id=user_id, connected_at=at, meta=meta)


def test_members_fold_a_users_sockets_earliest_first() -> None:
    """members_of(): one member per user (sockets by time, first one's meta) and per anonymous socket."""
    members = members_of(
        [info("b", "7", 3.0, name="late"), info("x", None, 2.0), info("a", "7", 1.0, name="first")]
    )
    assert members == [
        Member(key="7", user_id="7", socket_ids=("a", "b"), meta={"name": "first"}),
        Member(key="socket:x", user_id=None, socket_ids=("x",), meta={}),
    ]
    assert members[0].to_json() == {
        "key": "7",
        "user_id": "7",
        "socket_ids": ["a", "b"],
        "meta": {"name": "first"},
    }


# -- presence and on_presence ---------------------------------------------------------------------


async def test_tabs_of_a_user_are_one_member(backend: str) -> None:
    """Two tabs of user 7 and an anonymous socket are two members; each joined once."""
    async with sockets(path(user=7), path(), path(user=7)) as (tab1, anon, tab2):
        members = await manager.apresence("room.lobby")
        assert [(m.key, m.user_id, m.socket_ids) for m in members] == [
            ("7", "7", (tab1.id, tab2.id)),
            (f"socket:{anon.id}", None, (anon.id,)),
        ]
        assert events() == [("joined", "7"), ("joined", f"socket:{anon.id}")]
        assert (await tab1.next_notification())["params"] == {"key": f"socket:{anon.id}"}
        assert await manager.apresence("room.nowhere") == []


async def test_closing_tabs_announces_left_once_on_the_last(backend: str) -> None:
    """Closing one of two tabs announces nothing; closing the last announces ``left``."""
    async with sockets(path(user=7), path(user=7), path()) as (tab1, tab2, watcher):
        await tab1.disconnect()  # returns once the socket's task ended: its presence change is done
        assert events("left") == []
        await tab2.disconnect()
        assert events("left") == [("left", "7")]
        assert EVENTS[-1][3].socket_ids == (tab2.id,)
        note = await watcher.next_notification()
        assert (note["method"], note["params"]) == ("left", {"key": "7"})


async def test_tabs_connecting_and_closing_at_once_join_and_leave_once(backend: str) -> None:
    """Ten tabs of one user connecting at once: one ``joined``; closing at once: one ``left``."""
    tabs = [RpcCommunicator(application, path(user=7)) for _ in range(10)]
    await asyncio.gather(*(tab.__aenter__() for tab in tabs))
    assert events() == [("joined", "7")]
    assert len((await manager.apresence("room.lobby"))[0].socket_ids) == 10
    await asyncio.gather(*(tab.disconnect() for tab in tabs))
    assert events() == [("joined", "7"), ("left", "7")]
    assert await manager.apresence("room.lobby") == []


async def test_group_changes_through_the_manager_announce_transitions(backend: str) -> None:
    """add_to_group / remove_from_group announce only a member's first join and last leave."""
    async with sockets(path(user=7), path(user=7)) as (tab1, tab2):
        await tab1.call("enter", "side")
        await tab2.call("enter", "side")
        assert events(group="side") == [("joined", "7")]
        await manager.aremove_from_group(tab1.id, "side")
        await manager.aremove_from_group(tab1.id, "side")  # not a member any more: no-op
        assert events(group="side") == [("joined", "7")]
        await tab2.call("exit", "side")
        assert events(group="side") == [("joined", "7"), ("left", "7")]
        await sync_to_async(manager.add_to_group)(tab1.id, "side")
        assert events(group="side") == [("joined", "7"), ("left", "7"), ("joined", "7")]
        assert [m.socket_ids for m in await sync_to_async(manager.presence)("side")] == [(tab1.id,)]


async def test_failing_hook_is_logged_and_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """An exception in on_presence is logged; the join, the socket and the close go on."""
    with caplog.at_level(logging.ERROR, logger="wsmanager._presence"):
        async with sockets(path(kind="broken")) as (client,):
            assert await BrokenHookHandler.manager.agroups_of(client.id) == {"room.lobby"}
            await client.call("enter", "other")
    assert [(g, e) for _, g, e, _ in EVENTS] == [
        ("room.lobby", "joined"),
        ("other", "joined"),
        ("other", "left"),
        ("room.lobby", "left"),
    ]
    assert "on_presence of handler 'tests.presence.broken' failed" in caplog.text
    assert "hook failed" in caplog.text


async def test_handler_without_hook_needs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A handler class with no on_presence joins and leaves without events or errors."""
    with caplog.at_level(logging.WARNING, logger="wsmanager"):
        async with sockets(path(kind="nohook"), path(kind="nohook", user=3)) as (a, _):
            members = await NoHookHandler.manager.apresence("room.lobby")
            assert [m.key for m in members] == [f"socket:{a.id}", "3"]
    assert EVENTS == []
    assert caplog.text == ""


async def test_events_of_an_unknown_handler_name_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    """A process without a handler class of that name logs one warning and drops the events."""
    member = Member(key="7", user_id="7", socket_ids=("s1",))
    with caplog.at_level(logging.WARNING, logger="wsmanager._presence"):
        await announce("tests.presence.nobody", "g", "joined", member)
        await announce("tests.presence.nobody", "g", "left", member)
    assert caplog.text.count("'tests.presence.nobody' are dropped") == 1


# -- per-user sending ----------------------------------------------------------------------------


async def test_send_and_notify_user_reach_every_tab(backend: str) -> None:
    """send_user / notify_user reach each tab of the user (object or pk) and no one else."""
    async with sockets(path(user=7), path(user=7), path("elsewhere", user=8)) as (tab1, tab2, other):
        assert await manager.asend_user(User(pk=7), json={"hello": 1}) == 2
        for tab in (tab1, tab2):
            assert await tab.next_notification() == {"hello": 1}
        assert await manager.anotify_user(7, "ping", n=1) == 2
        for tab in (tab1, tab2):
            note = await tab.next_notification()
            assert (note["method"], note["params"]) == ("ping", {"n": 1})
        assert await sync_to_async(manager.send_user)("7", "text") == 2
        assert await tab1.receive_from() == "text"
        assert await tab2.receive_from() == "text"
        assert await sync_to_async(manager.notify_user)(User(pk=8), "ping") == 1
        assert (await other.next_notification())["method"] == "ping"
        assert await manager.asend_user(999, "nobody") == 0
        assert await manager.anotify_user(999, "ping") == 0
        assert await other.receive_nothing()


async def test_is_online_follows_the_users_sockets(backend: str) -> None:
    """is_online is true while the user has a socket open anywhere."""
    assert await manager.ais_online(7) is False
    async with sockets(path(user=7), path(user=7)) as (tab1, tab2):
        assert await manager.ais_online(User(pk=7)) is True
        assert await sync_to_async(manager.is_online)("7") is True
        assert await manager.ais_online(8) is False
        await tab1.disconnect()
        assert await manager.ais_online(7) is True
        await tab2.disconnect()
        assert await manager.ais_online(7) is False


async def test_invoke_user_returns_results_and_exceptions_per_socket(backend: str) -> None:
    """invoke_user maps each tab to its result, or to the exception it failed with."""
    async with sockets(path(user=7), path(user=7), path(user=7)) as (good, bad, silent):
        task = asyncio.ensure_future(manager.ainvoke_user(User(pk=7), "ask", "q", timeout=0.5))
        for tab, answer in ((good, {"result": "a"}), (bad, {"error": {"code": 4000, "message": "no"}})):
            request = await tab.receive_json_from()
            assert (request["method"], request["params"]) == ("ask", ["q"])
            await tab.send_json_to({"jsonrpc": "2.0", "id": request["id"], **answer})
        assert (await silent.receive_json_from())["method"] == "ask"
        results = await task
        assert set(results) == {good.id, bad.id, silent.id}
        assert results[good.id] == "a"
        assert isinstance(results[bad.id], RemoteError) and results[bad.id].code == 4000
        assert isinstance(results[silent.id], InvokeTimeout)
        assert await manager.ainvoke_user(999, "ask") == {}


async def test_sync_invoke_user_twin(backend: str) -> None:
    """invoke_user (sync) waits for every tab of the user."""
    async with sockets(path(user=7)) as (tab,):
        task = asyncio.ensure_future(sync_to_async(manager.invoke_user)(7, "double", 4, timeout=2))
        request = await tab.receive_json_from()
        await tab.send_json_to({"jsonrpc": "2.0", "id": request["id"], "result": 8})
        assert await task == {tab.id: 8}


# -- departures of dead and stopped processes ------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.usefixtures("on_redis")
async def test_crashed_process_members_leave_through_the_heartbeat() -> None:
    """Sockets of a process that stopped heartbeating are reaped and announced as ``left``."""
    registry = get_registry()
    assert isinstance(registry, RedisRegistry)
    dead = RedisRegistry(url=registry.url, prefix=registry.prefix, node_ttl=0.3)
    try:
        gone = ConnectionInfo(
            id="d1",
            handler=PresenceHandler.handler_name,
            node="dead",
            user_id="9",
            groups=frozenset({"room.lobby"}),
        )
        await dead.add(gone)
        await dead.add(gone.with_changes(id="d2", user_id=None))
        async with sockets(path(user=7)) as (watcher,):
            await until(lambda: len(events("left")) == 2)
            assert sorted(events("left")) == [("left", "9"), ("left", "socket:d2")]
            notes = [await watcher.next_notification() for _ in range(2)]
            assert sorted(n["params"]["key"] for n in notes) == ["9", "socket:d2"]
            assert [m.key for m in await manager.apresence("room.lobby")] == ["7"]
    finally:
        await dead.close()


async def test_stopping_node_announces_its_members_leaving(backend: str) -> None:
    """Node.stop() forgets this process's sockets and announces the members that left."""
    async with sockets(path(user=7), path(user=7), path()) as (_, _, anon):
        await get_node().stop()
        assert sorted(events("left")) == sorted([("left", "7"), ("left", f"socket:{anon.id}")])
        assert await manager.apresence("room.lobby") == []


@pytest.mark.redis
@pytest.mark.usefixtures("on_redis")
async def test_member_lost_by_the_registry_is_announced_again() -> None:
    """A socket the shared registry lost is re-added by the heartbeat and announced ``joined``."""
    async with sockets(path(user=7)) as (tab,):
        assert events() == [("joined", "7")]
        removed = await get_registry().remove(PresenceHandler.handler_name, tab.id)  # lost, not announced
        assert removed is not None and removed.left == {"room.lobby"}
        await until(lambda: events() == [("joined", "7"), ("joined", "7")])
        assert [m.socket_ids for m in await manager.apresence("room.lobby")] == [(tab.id,)]
