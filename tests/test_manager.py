"""``Manager`` (wsmanager._manager): queries, groups, sends to one, many, a group, a user or all,
invokes, errors (``SocketNotFound``, bad payloads), and the sync twins; in memory."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from tests import handlers
from tests.handlers import CalcHandler, HelloHandler, application
from tests.users import with_user
from wsmanager import Manager, RemoteError, SocketNotFound, get_manager
from wsmanager.testing import RpcCommunicator
from wsmanager_client.protocol import EncodeError

UNKNOWN = "x" * 43

manager = HelloHandler.manager


@pytest.fixture(autouse=True)
def _clean_events() -> Iterator[None]:
    """Each test starts with no recorded events."""
    handlers.reset()
    yield
    handlers.reset()


class Client:
    """An open HelloHandler socket and its id."""

    def __init__(self, comm: WebsocketCommunicator, sid: str) -> None:
        self.comm = comm
        self.id = sid

    async def receive(self) -> str | bytes:
        data: str | bytes = await self.comm.receive_from()
        return data

    async def nothing(self) -> bool:
        return bool(await self.comm.receive_nothing())


@asynccontextmanager
async def clients(n: int, path: str = "/ws/hello/") -> AsyncIterator[list[Client]]:
    """``n`` open HelloHandler sockets, disconnected on exit."""
    opened: list[Client] = []
    try:
        for _ in range(n):
            comm = WebsocketCommunicator(application, path)
            accepted, _ = await comm.connect()
            assert accepted
            opened.append(Client(comm, json.loads(await comm.receive_from())["id"]))
        yield opened
    finally:
        for c in opened:
            await c.comm.disconnect()


# -- queries ---------------------------------------------------------------------------------


async def test_queries_see_every_open_socket() -> None:
    """get, exists, ids, count, all and get_many describe the open sockets."""
    async with clients(3) as (a, b, c):
        assert sorted(await manager.aids()) == sorted([a.id, b.id, c.id])
        assert await manager.acount() == 3
        assert await manager.aexists(a.id) is True
        assert await manager.aexists(UNKNOWN) is False
        assert (await manager.aget(b.id)).id == b.id
        assert sorted(info.id for info in await manager.aall()) == sorted([a.id, b.id, c.id])
        many = await manager.aget_many([c.id, UNKNOWN, a.id])
        assert [info.id for info in many] == [c.id, a.id]


async def test_queries_are_namespaced_by_handler() -> None:
    """Another handler's manager does not see these sockets."""
    async with clients(1) as (a,):
        assert await CalcHandler.manager.acount() == 0
        assert await CalcHandler.manager.aexists(a.id) is False
        for attempt in (
            CalcHandler.manager.asend(a.id, "hi"),
            CalcHandler.manager.anotify(a.id, "m"),
            CalcHandler.manager.adisconnect(a.id),
            CalcHandler.manager.ainvoke(a.id, "m", timeout=1),
        ):
            with pytest.raises(SocketNotFound):
                await attempt
        assert await CalcHandler.manager.asend_many([a.id], "hi") == 0
        assert await a.nothing()
        assert await manager.aexists(a.id)


async def test_groups_add_query_and_remove() -> None:
    """Group membership shows in groups, group_members and groups_of."""
    async with clients(3) as (a, b, c):
        await manager.aadd_to_group(a.id, "red")
        await manager.aadd_to_group(b.id, "red")
        await manager.aadd_to_group(b.id, "blue")
        await manager.aadd_to_group(b.id, "blue")  # twice: still one membership
        assert sorted(await manager.agroups()) == ["blue", "red"]
        assert sorted(await manager.agroup_members("red")) == sorted([a.id, b.id])
        assert await manager.agroup_members("blue") == [b.id]
        assert await manager.agroup_members("green") == []
        assert await manager.agroups_of(b.id) == frozenset({"red", "blue"})
        assert await manager.agroups_of(c.id) == frozenset()
        await manager.aremove_from_group(b.id, "blue")
        await manager.aremove_from_group(c.id, "blue")  # not a member: no-op
        assert await manager.agroups() == ["red"]
        assert await manager.agroups_of(b.id) == frozenset({"red"})


async def test_groups_and_entries_are_cleaned_up_when_clients_leave() -> None:
    """After every client disconnects, no socket and no group is left."""
    async with clients(3) as sockets:
        for i, c in enumerate(sockets):
            await manager.aadd_to_group(c.id, "all")
            await manager.aadd_to_group(c.id, f"own-{i}")
        assert len(await manager.agroups()) == 4
        await sockets[0].comm.disconnect()
        assert sorted(await manager.agroups()) == ["all", "own-1", "own-2"]
        assert len(await manager.agroup_members("all")) == 2
    assert await manager.acount() == 0
    assert await manager.aids() == []
    assert await manager.agroups() == []
    assert await manager.agroup_members("all") == []


async def test_update_meta_merges_values() -> None:
    """``update_meta`` merges into the entry's meta."""
    async with clients(1) as (a,):
        await manager.aupdate_meta(a.id, name="Ada")
        await manager.aupdate_meta(a.id, colour="red")
        assert dict((await manager.aget(a.id)).meta) == {"name": "Ada", "colour": "red"}


# -- sending ------------------------------------------------------------------------------------


async def test_send_text_bytes_and_json_to_one_socket() -> None:
    """``send`` writes a text frame, a binary frame, or compact JSON text."""
    async with clients(2) as (a, b):
        await manager.asend(a.id, "hello")
        await manager.asend(a.id, b"\x00\x01")
        await manager.asend(a.id, json={"k": [1, "é"]})
        await manager.asend(a.id, json=None)
        assert [await a.receive() for _ in range(4)] == [
            "hello",
            b"\x00\x01",
            '{"k":[1,"é"]}',
            "null",
        ]
        assert await b.nothing()


async def test_send_many_returns_count_and_skips_unknown_ids() -> None:
    """``send_many`` delivers to the open ids only and says how many."""
    async with clients(3) as (a, b, c):
        assert await manager.asend_many([a.id, UNKNOWN, c.id], "hi") == 2
        assert await manager.asend_many([], "hi") == 0
        assert await a.receive() == "hi"
        assert await c.receive() == "hi"
        assert await b.nothing()


async def test_send_group_skips_excluded_and_non_members() -> None:
    """``send_group`` reaches members except ``exclude``; returns how many."""
    async with clients(4) as (a, b, c, d):
        for member in (a, b, c):
            await manager.aadd_to_group(member.id, "room")
        assert await manager.asend_group("room", "msg", exclude=[b.id]) == 2
        assert await manager.asend_group("room", json={"x": 1}) == 3
        assert await manager.asend_group("empty", "msg") == 0
        assert [await a.receive(), await a.receive()] == ["msg", '{"x":1}']
        assert await b.receive() == '{"x":1}'
        assert [await c.receive(), await c.receive()] == ["msg", '{"x":1}']
        assert await d.nothing()


async def test_send_all_reaches_every_socket_but_excluded() -> None:
    """``send_all`` reaches every open socket of the handler except ``exclude``."""
    async with clients(3) as (a, b, c), RpcCommunicator(application, "/ws/calc/") as other:
        assert await manager.asend_all(b"all", exclude=[a.id, UNKNOWN]) == 2
        assert await b.receive() == b"all"
        assert await c.receive() == b"all"
        assert await a.nothing()
        assert await other.receive_nothing()


async def test_sends_to_a_socket_that_left_are_skipped() -> None:
    """A disconnected socket is no longer a target of group or bulk sends."""
    async with clients(2) as (a, b):
        await manager.aadd_to_group(a.id, "room")
        await manager.aadd_to_group(b.id, "room")
        await a.comm.disconnect()
        assert await manager.asend_group("room", "x") == 1
        assert await manager.asend_many([a.id, b.id], "y") == 1
        with pytest.raises(SocketNotFound):
            await manager.asend(a.id, "z")
        assert [await b.receive(), await b.receive()] == ["x", "y"]


async def test_notify_variants_send_jsonrpc_notifications() -> None:
    """notify, notify_many, notify_group and notify_all send JSON-RPC notifications."""
    async with clients(3) as (a, b, c):
        await manager.aadd_to_group(a.id, "g")
        await manager.aadd_to_group(b.id, "g")
        await manager.anotify(a.id, "one", 1, "x")
        assert await manager.anotify_many([a.id, UNKNOWN, c.id], "many", k=True) == 2
        assert await manager.anotify_group("g", "grp", exclude=[a.id]) == 1
        assert await manager.anotify_all("all", n=None, exclude=[c.id]) == 2
        assert [json.loads(await a.receive()) for _ in range(3)] == [
            {"jsonrpc": "2.0", "method": "one", "params": [1, "x"]},
            {"jsonrpc": "2.0", "method": "many", "params": {"k": True}},
            {"jsonrpc": "2.0", "method": "all", "params": {"n": None}},
        ]
        assert [json.loads(await b.receive()) for _ in range(2)] == [
            {"jsonrpc": "2.0", "method": "grp", "params": []},
            {"jsonrpc": "2.0", "method": "all", "params": {"n": None}},
        ]
        assert json.loads(await c.receive())["method"] == "many"
        assert await c.nothing()


# -- a user's sockets ---------------------------------------------------------------------


@asynccontextmanager
async def user_clients(*users: int) -> AsyncIterator[list[Client]]:
    """One open HelloHandler socket per entry of ``users``, logged in as ``User(pk=that)``."""
    opened: list[Client] = []
    try:
        for pk in users:
            comm = WebsocketCommunicator(with_user(application), f"/ws/hello/?user={pk}")
            accepted, _ = await comm.connect()
            assert accepted
            opened.append(Client(comm, json.loads(await comm.receive_from())["id"]))
        yield opened
    finally:
        for c in opened:
            await c.comm.disconnect()


async def test_a_users_sockets_are_found_by_the_user_or_its_primary_key() -> None:
    async with user_clients(7, 7, 8) as (a, b, c):
        assert sorted(await manager.auser_sockets(7)) == sorted([a.id, b.id])
        assert await manager.auser_sockets(User(pk=8)) == [c.id]
        assert await manager.auser_sockets(9) == []
        assert (await manager.ais_online(User(pk=7)), await manager.ais_online(9)) == (True, False)
    assert await manager.ais_online(7) is False


async def test_send_user_and_notify_user_reach_every_socket_of_the_user_and_no_other() -> None:
    """Both return how many sockets took the frame: 0 for a user who is not connected."""
    async with user_clients(7, 7, 8) as (a, b, c):
        assert await manager.asend_user(7, "hi") == 2
        assert await manager.anotify_user(User(pk=7), "ping", n=1) == 2
        assert await manager.asend_user(9, "nobody") == 0
        assert await manager.anotify_user(9, "nobody") == 0
        for sock in (a, b):
            assert await sock.receive() == "hi"
            assert json.loads(await sock.receive()) == {
                "jsonrpc": "2.0",
                "method": "ping",
                "params": {"n": 1},
            }
        assert await c.nothing()


async def test_invoke_user_returns_each_sockets_result_or_its_exception() -> None:
    """One socket answers, the other errs: both outcomes come back by id, nothing is raised."""
    app = with_user(application)
    async with (
        RpcCommunicator(app, "/ws/calc/?user=5") as one,
        RpcCommunicator(app, "/ws/calc/?user=5") as two,
    ):
        task = asyncio.ensure_future(CalcHandler.manager.ainvoke_user(5, "ask", "q", timeout=2))
        first, second = await one.receive_json_from(), await two.receive_json_from()
        await one.send_json_to({"jsonrpc": "2.0", "id": first["id"], "result": "yes"})
        await two.send_json_to({"jsonrpc": "2.0", "id": second["id"], "error": {"code": 7, "message": "no"}})
        outcome = await task
        assert outcome[one.id] == "yes"
        assert isinstance(outcome[two.id], RemoteError) and outcome[two.id].code == 7
        assert await CalcHandler.manager.ainvoke_user(6, "ask", timeout=2) == {}


async def test_disconnect_closes_from_outside_with_code_and_reason() -> None:
    """``disconnect(id, code, reason)`` closes the socket and removes it at once."""
    async with clients(2) as (a, b):
        await manager.adisconnect(a.id, 4000, "kicked")
        assert await a.comm.receive_output() == {
            "type": "websocket.close",
            "code": 4000,
            "reason": "kicked",
        }
        assert await manager.aids() == [b.id]
        assert await b.nothing()


async def test_disconnect_defaults_to_1000() -> None:
    """``disconnect(id)`` closes with 1000."""
    async with clients(1) as (a,):
        await manager.adisconnect(a.id)
        assert (await a.comm.receive_output())["code"] == 1000


async def test_invoke_through_the_manager() -> None:
    """``Manager.invoke`` reaches an RPC client and returns its result."""
    async with RpcCommunicator(application, "/ws/calc/") as client:
        task = asyncio.ensure_future(CalcHandler.manager.ainvoke(client.id, "ask", "q", timeout=2))
        request = await client.receive_json_from()
        assert (request["method"], request["params"]) == ("ask", ["q"])
        await client.send_json_to({"jsonrpc": "2.0", "id": request["id"], "result": "a"})
        assert await task == "a"


async def test_invoke_params_carries_named_params_of_any_name() -> None:
    """``invoke_params`` takes the params as one value: ``timeout`` and ``self`` are params too."""
    async with RpcCommunicator(application, "/ws/calc/") as client:
        invoke = sync_to_async(CalcHandler.manager.invoke_params)
        params = {"timeout": 1, "self": 2, "method": 3, "socket_id": 4}
        task = asyncio.ensure_future(invoke(client.id, "ask", params, timeout=2))
        request = await client.receive_json_from()
        assert (request["method"], request["params"]) == ("ask", params)
        await client.send_json_to({"jsonrpc": "2.0", "id": request["id"], "result": "a"})
        assert await task == "a"
        task = asyncio.ensure_future(CalcHandler.manager.ainvoke_params(client.id, "ask", [1, 2], timeout=2))
        request = await client.receive_json_from()
        assert request["params"] == [1, 2]
        await client.send_json_to({"jsonrpc": "2.0", "id": request["id"], "result": "b"})
        assert await task == "b"


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("aget", ()),
        ("agroups_of", ()),
        ("asend", ("hi",)),
        ("anotify", ("method",)),
        ("ainvoke", ("method",)),
        ("adisconnect", ()),
        ("aadd_to_group", ("g",)),
        ("aupdate_meta", ()),
    ],
)
async def test_unknown_id_raises_socket_not_found(name: str, args: tuple[Any, ...]) -> None:
    """Operations aimed at one id raise ``SocketNotFound`` for an unknown id."""
    async with clients(1):
        with pytest.raises(SocketNotFound) as info:
            await getattr(manager, name)(UNKNOWN, *args)
        assert info.value.socket_id == UNKNOWN
        assert info.value.handler_name == manager.handler_name
        assert UNKNOWN in str(info.value)


async def test_remove_from_group_of_unknown_id_is_a_no_op() -> None:
    """``remove_from_group`` for an unknown id does nothing and does not raise."""
    await manager.aremove_from_group(UNKNOWN, "g")
    assert await manager.agroups() == []


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "error"),
    [
        ("asend", (), {}, TypeError),
        ("asend", ("text",), {"json": 1}, TypeError),
        ("asend", (123,), {}, TypeError),
        ("asend", (["list"],), {}, TypeError),
        ("asend_many", (), {}, TypeError),
        ("asend_group", ("g",), {}, TypeError),
        ("asend_all", (), {}, TypeError),
        ("anotify", ("m", 1), {"k": 2}, TypeError),
        ("anotify_all", ("m", 1), {"k": 2}, TypeError),
        ("asend", (), {"json": {1, 2}}, EncodeError),
        ("asend", (), {"json": float("nan")}, EncodeError),
        ("anotify", ("m", object()), {}, EncodeError),
    ],
)
async def test_bad_payload_arguments_raise_and_send_nothing(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception]
) -> None:
    """No data, data and json, a non-frame type or mixed params: TypeError; not JSON: EncodeError."""
    async with clients(1) as (a,):
        target: tuple[Any, ...] = ([a.id],) if name == "asend_many" else (a.id,)
        if name in ("asend_group", "asend_all", "anotify_all"):
            target = ()
        with pytest.raises(error):
            await getattr(manager, name)(*target, *args, **kwargs)
        assert await a.nothing()


async def test_frame_of_wrong_type_raises_type_error() -> None:
    """A payload that is neither str nor bytes is a ``TypeError``."""
    async with clients(1) as (a,):
        with pytest.raises(TypeError, match=r"str \(text\) or bytes"):
            await manager.asend(a.id, 12)  # type: ignore[arg-type]


# -- sync twins --------------------------------------------------------------------------------


async def test_sync_twins_work_from_a_worker_thread() -> None:
    """The sync twins run from sync code while the event loop serves the sockets."""
    async with clients(2) as (a, b):
        await sync_to_async(manager.add_to_group)(a.id, "g")
        assert await sync_to_async(manager.count)() == 2
        assert await sync_to_async(manager.exists)(a.id) is True
        assert await sync_to_async(manager.group_members)("g") == [a.id]
        assert await sync_to_async(manager.groups_of)(a.id) == frozenset({"g"})
        await sync_to_async(manager.send)(a.id, "from a thread")
        assert await sync_to_async(manager.send_group)("g", b"grp") == 1
        assert await sync_to_async(manager.send_all)("all", exclude=[a.id]) == 1
        assert await sync_to_async(manager.notify_many)([b.id], "n") == 1
        assert [await a.receive(), await a.receive()] == ["from a thread", b"grp"]
        assert await b.receive() == "all"
        assert json.loads(await b.receive())["method"] == "n"
        await sync_to_async(manager.remove_from_group)(a.id, "g")
        assert await sync_to_async(manager.groups)() == []
        await sync_to_async(manager.disconnect)(b.id, 4001)
        assert (await b.comm.receive_output())["code"] == 4001
        with pytest.raises(SocketNotFound):
            await sync_to_async(manager.get)(b.id)


async def test_sync_invoke_twin_waits_for_the_client() -> None:
    """``invoke`` (sync) blocks its thread until the client answers."""
    async with RpcCommunicator(application, "/ws/calc/") as client:
        invoke = sync_to_async(CalcHandler.manager.invoke)
        task = asyncio.ensure_future(invoke(client.id, "double", 4, timeout=2))
        request = await client.receive_json_from()
        await client.send_json_to({"jsonrpc": "2.0", "id": request["id"], "result": 8})
        assert await task == 8


async def test_sync_twin_in_the_event_loop_thread_raises() -> None:
    """Calling a sync twin from the loop's own thread raises instead of deadlocking."""
    with pytest.raises(RuntimeError):
        manager.count()


def test_sync_twins_share_the_async_docs() -> None:
    """Each sync twin is named without the ``a`` and says which coroutine it wraps."""
    assert Manager.send.__name__ == "send"
    assert "asend" in (Manager.send.__doc__ or "")


# -- managers ----------------------------------------------------------------------------------


def test_get_manager_by_name_and_by_class_is_the_same_manager() -> None:
    """``get_manager`` returns one Manager per handler name, by name or class."""
    assert get_manager(HelloHandler) is HelloHandler.manager
    assert get_manager(HelloHandler.handler_name) is HelloHandler.manager
    assert get_manager("chat") is get_manager("chat")
    assert get_manager(CalcHandler) is not HelloHandler.manager
    assert repr(HelloHandler.manager) == f"<Manager {HelloHandler.handler_name!r}>"


async def test_manager_by_name_reaches_sockets_without_the_class() -> None:
    """A Manager built from the name alone sees and sends to the same sockets."""
    async with clients(1) as (a,):
        by_name = get_manager("tests.handlers.HelloHandler")
        assert await by_name.aids() == [a.id]
        await by_name.asend(a.id, "by name")
        assert await a.receive() == "by name"


# -- ordering -----------------------------------------------------------------------------------


async def test_two_hundred_rapid_sends_arrive_in_order() -> None:
    """Frames from one sender to one socket arrive in the order they were sent."""
    async with clients(1) as (a,):
        for i in range(200):
            if i % 3 == 0:
                await manager.asend(a.id, str(i))
            elif i % 3 == 1:
                await manager.asend(a.id, str(i).encode())
            else:
                await manager.asend(a.id, json=i)
        received = [await a.receive() for _ in range(200)]
        assert [int(x) for x in received] == list(range(200))
        assert await a.nothing()


async def test_rapid_sends_from_a_sync_thread_arrive_in_order() -> None:
    """200 sync-twin sends from one thread arrive in order too."""
    async with clients(1) as (a,):

        def send_all() -> None:
            for i in range(200):
                manager.send(a.id, str(i))

        await sync_to_async(send_all)()
        assert [await a.receive() for _ in range(200)] == [str(i) for i in range(200)]


def test_every_coroutine_method_has_a_sync_twin_with_the_same_signature() -> None:
    """``Manager.afoo`` has ``Manager.foo``, and ``inspect.signature`` shows both the same."""
    coroutines = {
        name: fn
        for name, fn in vars(Manager).items()
        if inspect.iscoroutinefunction(fn) and name.startswith("a") and not name.startswith("_")
    }
    assert len(coroutines) >= 25
    for name, afunc in coroutines.items():
        twin = getattr(Manager, name.removeprefix("a"), None)
        assert twin is not None and not inspect.iscoroutinefunction(twin), name
        assert inspect.signature(twin) == inspect.signature(afunc), name
        assert twin.__name__ == name.removeprefix("a")
