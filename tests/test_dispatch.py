"""``RpcHandler`` (wsmanager.jsonrpc._dispatch, with the `@rpc` mark of ._exposure): JSON-RPC both ways,
params binding, errors, the call queue, invoke."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from tests import handlers
from tests.handlers import BusyHandler, CalcHandler, EchoHandler, WelcomeHandler, application
from wsmanager import (
    ConfigurationError,
    ConnectionClosed,
    InvokeError,
    InvokeTimeout,
    RemoteError,
    RpcHandler,
    route,
    rpc,
    websocket_app,
)
from wsmanager.handlers._handler import instance_attributes
from wsmanager.node import get_node
from wsmanager.observe import _counters as counters
from wsmanager.testing import RpcCommunicator
from wsmanager_client import protocol
from wsmanager_client.protocol import (
    BINARY_NOT_SUPPORTED,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RATE_LIMITED,
    SERVER_BUSY,
    UNAVAILABLE,
)


@pytest.fixture(autouse=True)
def _clean_events() -> Iterator[None]:
    """Each test starts with no recorded events and no gates."""
    handlers.reset()
    yield
    handlers.reset()


def connect(path: str = "/ws/calc/") -> RpcCommunicator:
    """An RPC client of the test application (use as ``async with``)."""
    return RpcCommunicator(application, path, timeout=2.0)


def call(method: str, params: Any = None, msg_id: Any = 1) -> dict[str, Any]:
    """A request object (``params`` omitted when None)."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": msg_id}
    if params is not None:
        message["params"] = params
    return message


def note(method: str, params: Any = None) -> dict[str, Any]:
    """A notification object (no id)."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


async def exchange(client: RpcCommunicator, payload: Any) -> Any:
    """Send ``payload`` as one JSON text frame and return the decoded answer frame."""
    await client.send_json_to(payload)
    return await client.receive_json_from(client.timeout)


async def error_of(client: RpcCommunicator, method: str, *args: Any, **kwargs: Any) -> RemoteError:
    """The error a call is answered with (fails if it succeeds)."""
    with pytest.raises(RemoteError) as info:
        await client.call(method, *args, **kwargs)
    return info.value


# -- connection ----------------------------------------------------------------------------


async def test_rpc_connected_is_the_first_frame_and_carries_the_id() -> None:
    """The first frame is ``rpc.connected`` with the socket id, before queued frames."""
    comm = WebsocketCommunicator(application, "/ws/welcome/")
    assert (await comm.connect())[0]
    first = await comm.receive_json_from()
    second = await comm.receive_json_from()
    assert first["method"] == "rpc.connected"
    assert "id" not in first
    (sid,) = await WelcomeHandler.manager.aids()
    assert first["params"] == {"id": sid}
    assert second == {"jsonrpc": "2.0", "method": "welcome", "params": {"text": "hi"}}
    await comm.disconnect()


async def test_rpc_ping_answers_pong() -> None:
    """The built-in ``rpc.ping`` answers ``"pong"``."""
    async with connect() as client:
        assert await client.call("rpc.ping") == "pong"


# -- params -----------------------------------------------------------------------------------


async def test_positional_params_bind_in_order() -> None:
    """An array of params binds to the method's parameters in order."""
    async with connect() as client:
        assert await client.call("add", 2, 3) == 5
        assert await client.call("greet", "Ada", "?") == "Hello, Ada?"


async def test_named_params_bind_by_name() -> None:
    """An object of params binds by name; defaults fill the rest."""
    async with connect() as client:
        assert await client.call("add", b=3, a=2) == 5
        assert await client.call("greet", name="Ada") == "Hello, Ada!"


async def test_absent_params_call_without_arguments() -> None:
    """A call without ``params`` passes no arguments."""
    async with connect() as client:
        assert await exchange(client, call("describe")) == {
            "jsonrpc": "2.0",
            "result": {"value": None, "tags": None},
            "id": 1,
        }


async def test_annotations_accept_matching_json_values() -> None:
    """Unions, None, ``list[int]``, ``dict[str, str]`` and int-for-float all pass."""
    async with connect() as client:
        assert await client.call("total", [1, 2, 3]) == 6
        assert await client.call("describe", 5, {"a": "b"}) == {"value": 5, "tags": {"a": "b"}}
        assert await client.call("describe", None) == {"value": None, "tags": None}
        assert await client.call("math.negate", 2) == -2
        assert await client.call("multiply", 1.5, 2) == 3.0


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("add", [1]),
        ("add", {"a": 1}),
        ("add", [1, 2, 3]),
        ("add", {"a": 1, "b": 2, "c": 3}),
        ("add", {"a": 1, "self": 2}),
        ("add", ["1", 2]),
        ("add", [1.5, 2]),
        ("add", [True, 2]),
        ("add", {"a": 1, "b": None}),
        ("multiply", [True, 2]),
        ("multiply", ["2", 2]),
        ("greet", [1]),
        ("total", [[1, "2"]]),
        ("total", [{"a": 1}]),
        ("describe", ["5"]),
        ("describe", [1, {"a": 1}]),
    ],
)
async def test_wrong_params_are_answered_32602(method: str, params: Any) -> None:
    """Missing, extra, or wrongly typed params (bool is not int) give -32602."""
    async with connect() as client:
        reply = await exchange(client, call(method, params, 7))
        assert reply["id"] == 7
        assert reply["error"]["code"] == INVALID_PARAMS
        assert reply["error"]["message"] == "Invalid params"
        assert handlers.events == []


async def test_type_mismatch_names_the_parameter() -> None:
    """The -32602 error's data says which parameter has which expected type."""
    async with connect() as client:
        error = await error_of(client, "add", 1, "2")
        assert error.code == INVALID_PARAMS
        assert error.data == "b must be int"


# -- method lookup ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    [
        "nope",
        "helper",
        "_private",
        "negate",
        "fail_rpc",
        "on_disconnect",
        "on_connect",
        "on_receive",
        "close",
        "invoke",
        "notify",
        "send_frame",
        "websocket_connect",
        "rpc.nope",
        "__init__",
        "",
    ],
)
async def test_unknown_unexposed_private_and_hook_methods_give_32601(method: str) -> None:
    """Only ``@rpc`` methods, by their exposed name, can be called."""
    async with connect() as client:
        error = await error_of(client, method)
        assert (error.code, error.message, error.data) == (
            METHOD_NOT_FOUND,
            "Method not found",
            method,
        )


@pytest.mark.parametrize("hook", ["on_connect", "on_receive", "close", "invoke", "send"])
def test_rpc_on_a_handler_hook_or_method_is_refused(hook: str) -> None:
    """Marking a hook or a base method with ``@rpc`` fails when the class is made."""

    async def method(self: Any) -> None:
        """A user method that would shadow the base class's."""

    with pytest.raises(ConfigurationError, match=hook):
        type("BadHandler", (RpcHandler,), {hook: rpc(method), "__module__": __name__})


@pytest.mark.parametrize("attr", sorted(instance_attributes(RpcHandler)))
def test_rpc_on_the_name_of_an_instance_attribute_is_refused(attr: str) -> None:
    """``@rpc async def info(self)`` (or ``writer``, ``intake``, ``lifecycle``, ...) would be
    hidden by the attribute every instance sets: refused when the class is made, with the name."""

    async def method(self: Any) -> None:
        """A user method the instance attribute would hide."""

    with pytest.raises(ConfigurationError, match=f"attribute every handler instance sets \\({attr!r}\\)"):
        type("BadHandler", (RpcHandler,), {attr: rpc(method), "__module__": __name__})


def test_an_exposed_name_may_be_an_instance_attribute_name_under_another_method_name() -> None:
    """``@rpc(name="info")`` on a method of another name is accepted: clients call ``info``."""

    async def about(self: Any) -> str:
        return "about"

    cls = type("InfoHandler", (RpcHandler,), {"about": rpc(name="info")(about), "__module__": __name__})
    assert cls.rpc_methods["info"].attr == "about"


async def test_every_public_attribute_a_live_handler_sets_is_known_to_the_check() -> None:
    """The annotated names cover what an open handler really binds (so the check cannot miss one)."""
    async with connect() as client:
        sock = get_node().sockets[client.id]
        bound = {name for name in vars(sock) if not name.startswith("_")}
        assert bound, "a live handler binds attributes"
        assert sorted(bound - instance_attributes(type(sock)) - set(dir(RpcHandler))) == []


async def test_an_idle_socket_binds_few_names_and_made_nothing_it_has_not_used() -> None:
    """An open socket that was never called, never called its client and never logged binds
    at most 30 names (CPython shares one key table among instance dicts of up to 30 names;
    36 cost 1.6 KiB a socket) and holds no call queue, worker set or invocation table."""
    async with connect() as client:
        sock = get_node().sockets[client.id]
        assert len(vars(sock)) <= 30, sorted(vars(sock))
        for unused in ("_calls", "_workers", "_invocations", "_log", "_running_ids", "_early_cancels"):
            assert getattr(sock, unused) is None, unused
        assert await client.call("add", 2, 3) == 5  # what a call needs is made then
        assert sock._calls is not None and sock._workers is not None and sock._running_ids is not None
        assert len(vars(sock)) <= 30, sorted(vars(sock))


@pytest.mark.parametrize("name", ["rpc.custom", "_hidden"])
def test_reserved_exposed_names_are_refused(name: str) -> None:
    """``@rpc`` refuses names under ``rpc.`` and names starting with ``_``."""
    with pytest.raises(ValueError, match="reserved"):
        rpc(name=name)(lambda self: None)


def test_subclasses_inherit_exposed_methods() -> None:
    """A subclass exposes its base class's ``@rpc`` methods too."""
    assert set(CalcHandler.rpc_methods) <= set(BusyHandler.rpc_methods)
    assert "math.negate" in CalcHandler.rpc_methods
    assert "negate" not in CalcHandler.rpc_methods


# -- notifications and batches ----------------------------------------------------------------


async def test_notifications_run_but_get_no_response() -> None:
    """A request without id runs, and nothing at all is sent back."""
    async with connect() as client:
        await client.notify("record", "quiet")
        await client.send_json_to(note("nope"))
        await client.send_json_to(note("add", ["x"]))
        await client.send_json_to(note("fail.value"))
        assert await client.receive_nothing(0.2)
        assert await client.call("rpc.ping") == "pong"  # runs after the notifications
        assert handlers.events == [("record", "quiet")]


async def test_batch_is_answered_as_a_batch_in_order() -> None:
    """A batch gets one array of responses, in request order, without notifications."""
    async with connect() as client:
        batch = [
            call("add", [1, 2], "a"),
            note("record", ["in batch"]),
            call("nope", None, "b"),
            {"jsonrpc": "2.0"},
            call("greet", {"name": "Bo"}, 3),
            1,
        ]
        reply = await exchange(client, batch)
        assert isinstance(reply, list)
        assert [r["id"] for r in reply] == ["a", "b", None, 3, None]
        assert reply[0]["result"] == 3
        assert reply[1]["error"]["code"] == METHOD_NOT_FOUND
        assert reply[2]["error"]["code"] == INVALID_REQUEST
        assert reply[3]["result"] == "Hello, Bo!"
        assert reply[4]["error"]["code"] == INVALID_REQUEST
        assert handlers.events == [("record", "in batch")]


async def test_batch_of_notifications_gets_nothing() -> None:
    """A batch made only of notifications is not answered, not even with ``[]``."""
    async with connect() as client:
        await client.send_json_to([note("record", [1]), note("record", [2]), note("nope")])
        assert await client.receive_nothing(0.2)
        assert await client.call("rpc.ping") == "pong"
        assert handlers.events == [("record", 1), ("record", 2)]


async def test_empty_batch_gets_one_invalid_request() -> None:
    """``[]`` is answered with a single -32600 error object, not an array."""
    async with connect() as client:
        reply = await exchange(client, [])
        assert isinstance(reply, dict)
        assert reply["error"]["code"] == INVALID_REQUEST
        assert reply["id"] is None


async def test_batch_over_max_batch_size_gets_one_invalid_request() -> None:
    """A batch longer than ``max_batch_size`` gets one -32600 error and nothing runs."""
    async with connect() as client:
        reply = await exchange(client, [call("record", [i], i) for i in range(11)])
        assert isinstance(reply, dict)
        assert reply["error"]["code"] == INVALID_REQUEST
        assert reply["id"] is None
        assert await exchange(client, [call("add", [i, 0], i) for i in range(10)]) == [
            {"jsonrpc": "2.0", "result": i, "id": i} for i in range(10)
        ]
        assert handlers.events == []


@pytest.mark.parametrize("text", ["not json", '{"jsonrpc": "2.0", "method": "add"', "NaN"])
async def test_parse_error_answers_32700_with_id_null(text: str) -> None:
    """Text that is not JSON gets -32700 with ``id: null``; the socket stays open."""
    async with connect() as client:
        await client.send_to(text_data=text)
        reply = await client.receive_json_from()
        assert reply == {
            "jsonrpc": "2.0",
            "error": {"code": PARSE_ERROR, "message": "Parse error"},
            "id": None,
        }
        assert await client.call("add", 1, 1) == 2


async def test_invalid_request_object_answers_32600_with_its_id() -> None:
    """A single invalid request object gets -32600 under its id."""
    async with connect() as client:
        reply = await exchange(client, {"jsonrpc": "1.0", "method": "add", "id": 9})
        assert (reply["id"], reply["error"]["code"]) == (9, INVALID_REQUEST)


async def test_binary_frame_answers_32001_and_keeps_the_socket() -> None:
    """A binary frame gets -32001 with id null, and later calls still work."""
    async with connect() as client:
        await client.send_to(bytes_data=b'{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}')
        reply = await client.receive_json_from()
        assert reply["id"] is None
        assert reply["error"]["code"] == BINARY_NOT_SUPPORTED
        assert await client.call("add", 1, 2) == 3


# -- results and errors --------------------------------------------------------------------


async def test_sync_method_runs_in_a_worker_thread() -> None:
    """A plain ``def`` method runs off the event loop's thread."""
    async with connect() as client:
        assert await client.call("thread_name") != threading.current_thread().name
        assert await client.call("multiply", 3, 4) == 12


async def test_thread_insensitive_sync_methods_run_side_by_side() -> None:
    """``@rpc(thread_sensitive=False)``: two blocking calls meet in two pool threads, where
    two calls of a default sync method cannot (the second waits for the first)."""
    async with (
        RpcCommunicator(application, "/ws/calc/", timeout=30) as a,
        RpcCommunicator(application, "/ws/calc/", timeout=30) as b,
    ):
        assert await asyncio.gather(a.call("meet", "k1", 20), b.call("meet", "k1", 20)) == ["met", "met"]
        replies = await asyncio.gather(
            a.request("meet.serially", "k2", 0.5), b.request("meet.serially", "k2", 0.5)
        )
        assert [reply["error"]["code"] for reply in replies] == [INTERNAL_ERROR, INTERNAL_ERROR]


def test_thread_sensitive_applies_to_sync_methods_only() -> None:
    """``thread_sensitive=False`` on an ``async def`` is refused when the class is defined."""
    with pytest.raises(ValueError, match="plain def methods"):

        class Wrong(RpcHandler):
            @rpc(thread_sensitive=False)
            async def nope(self) -> None: ...


async def test_rpc_error_is_sent_with_its_code_message_and_data() -> None:
    """An ``RpcError`` raised by a method reaches the client as is."""
    async with connect() as client:
        reply = await exchange(client, call("fail.rpc", None, "x"))
        assert reply == {
            "jsonrpc": "2.0",
            "error": {"code": 4000, "message": "Nope", "data": {"why": "because"}},
            "id": "x",
        }
        assert await client.call("rpc.ping") == "pong"


@pytest.mark.parametrize("method", ["fail.value", "fail.sync"])
async def test_other_exceptions_give_32603_without_detail(method: str) -> None:
    """Any other exception gives a generic -32603: no message, type or traceback."""
    async with connect() as client:
        await client.send_json_to(call(method, None, 5))
        raw = await client.receive_from()
        assert json.loads(raw) == {
            "jsonrpc": "2.0",
            "error": {"code": INTERNAL_ERROR, "message": "Internal error"},
            "id": 5,
        }
        for leak in ("secret", "Traceback", "Error", "handlers.py"):
            assert leak not in raw
        assert await client.call("rpc.ping") == "pong"


@pytest.mark.parametrize("method", ["fail.registry", "fail.delivery"])
async def test_registry_or_layer_down_gives_32005_without_detail(method: str) -> None:
    """RegistryUnavailable or DeliveryError in a method: -32005, a retryable outage, no detail."""
    async with connect() as client:
        await client.send_json_to(call(method, None, 6))
        raw = await client.receive_from()
        assert json.loads(raw) == {
            "jsonrpc": "2.0",
            "error": {"code": UNAVAILABLE, "message": "Service temporarily unavailable"},
            "id": 6,
        }
        assert "secret" not in raw
        assert await client.call("rpc.ping") == "pong"


async def test_result_that_is_not_json_gives_32603() -> None:
    """A result that cannot be encoded is answered -32603; the socket stays open."""
    async with connect() as client:
        error = await error_of(client, "not_json")
        assert (error.code, error.message, error.data) == (INTERNAL_ERROR, "Internal error", None)
        assert await client.call("add", 1, 1) == 2


# -- the call queue --------------------------------------------------------------------


async def test_calls_run_one_at_a_time_in_arrival_order() -> None:
    """With ``max_concurrent_calls = 1`` a call starts only after the previous one."""
    async with connect() as client:
        await client.send_json_to(call("hold", ["first"], 1))
        await client.send_json_to(call("record", [2], 2))
        await client.send_json_to(call("record", [3], 3))
        assert await client.receive_nothing(0.2)
        assert handlers.events == []
        handlers.gate("first").set()
        replies = [await client.receive_json_from() for _ in range(3)]
        assert [r["id"] for r in replies] == [1, 2, 3]
        assert handlers.events == [("record", 2), ("record", 3)]


async def test_concurrent_calls_overlap_when_allowed() -> None:
    """With ``max_concurrent_calls = 2`` a second call runs while the first waits."""
    async with connect("/ws/parallel/") as client:
        await client.send_json_to(call("hold", ["first"], 1))
        assert await client.call("add", 1, 1) == 2
        handlers.gate("first").set()
        assert await client.receive_json_from() == {"jsonrpc": "2.0", "result": "first", "id": 1}


async def test_calls_over_max_pending_calls_get_32000() -> None:
    """Beyond ``max_pending_calls`` waiting or running calls, a call gets -32000 at once."""
    async with connect("/ws/busy/") as client:
        await client.send_json_to(call("hold", ["first"], 1))
        await client.send_json_to(call("record", ["second"], 2))
        await client.send_json_to(call("record", ["third"], 3))
        await client.send_json_to(note("record", ["fourth"]))
        busy = await client.receive_json_from()
        assert (busy["id"], busy["error"]["code"]) == (3, SERVER_BUSY)
        assert await client.receive_nothing(0.2)
        handlers.gate("first").set()
        replies = [await client.receive_json_from() for _ in range(2)]
        assert [(r["id"], r.get("result")) for r in replies] == [(1, "first"), (2, "second")]
        assert handlers.events == [("record", "second")]
        assert await client.call("add", 1, 1) == 2


async def test_busy_calls_are_counted() -> None:
    """Refused calls are counted in the node's stats."""
    async with connect("/ws/busy/") as client:
        for i in range(4):
            await client.send_json_to(call("hold", ["gate"], i))
        assert [(await client.receive_json_from())["id"] for _ in range(2)] == [2, 3]
        assert counters.stats().get("calls_refused_busy", 0) == 2
        handlers.gate("gate").set()
        assert [(await client.receive_json_from())["id"] for _ in range(2)] == [0, 1]


# -- server to client ------------------------------------------------------------------


async def answer_next_request(client: RpcCommunicator, **reply: Any) -> dict[str, Any]:
    """Read the server's next request and answer it with ``reply`` (result or error)."""
    request = await client.receive_json_from()
    assert request["jsonrpc"] == "2.0" and "method" in request and "id" in request, request
    await client.send_json_to({"jsonrpc": "2.0", "id": request["id"], **reply})
    return request


async def test_invoke_returns_the_client_result() -> None:
    """``invoke`` sends a request with the params and returns the client's result."""
    async with connect() as client:
        task = asyncio.ensure_future(CalcHandler.manager.ainvoke(client.id, "double", 21, timeout=2))
        request = await answer_next_request(client, result=42)
        assert (request["method"], request["params"]) == ("double", [21])
        assert await task == 42


async def test_invoke_with_named_params_sends_an_object() -> None:
    """Keyword arguments of ``invoke`` become named params."""
    async with connect() as client:
        task = asyncio.ensure_future(
            CalcHandler.manager.ainvoke(client.id, "scale", value=2, factor=3, timeout=2)
        )
        request = await answer_next_request(client, result=None)
        assert request["params"] == {"value": 2, "factor": 3}
        assert await task is None


async def test_invoke_raises_remote_error_with_the_client_error() -> None:
    """A client error answer raises ``RemoteError`` with its code, message and data."""
    async with connect() as client:
        task = asyncio.ensure_future(CalcHandler.manager.ainvoke(client.id, "double", 1, timeout=2))
        await answer_next_request(client, error={"code": 4100, "message": "no", "data": [1]})
        with pytest.raises(RemoteError) as info:
            await task
        assert (info.value.code, info.value.message, info.value.data) == (4100, "no", [1])
        assert (info.value.socket_id, info.value.method) == (client.id, "double")


async def test_invoke_times_out_with_invoke_timeout() -> None:
    """No answer within ``timeout`` raises ``InvokeTimeout``; a late answer is ignored."""
    async with connect() as client:
        with pytest.raises(InvokeTimeout) as info:
            await CalcHandler.manager.ainvoke(client.id, "double", 1, timeout=0.05)
        assert info.value.timeout == 0.05
        late = await client.receive_json_from()
        await client.send_json_to({"jsonrpc": "2.0", "id": late["id"], "result": 2})
        assert await client.call("add", 1, 1) == 2


async def test_invoke_fails_with_connection_closed_when_the_socket_closes() -> None:
    """The client disconnecting while an invoke waits raises ``ConnectionClosed``."""
    client = connect()
    await client.connect()
    task = asyncio.ensure_future(CalcHandler.manager.ainvoke(client.id, "double", 1, timeout=2))
    await client.receive_json_from()
    await client.disconnect(4002)
    with pytest.raises(ConnectionClosed) as info:
        await task
    assert (info.value.socket_id, info.value.code) == (client.id, 4002)


async def test_invoke_fails_with_connection_closed_when_the_server_closes() -> None:
    """A server-side close while an invoke waits raises ``ConnectionClosed`` too."""
    async with connect() as client:
        task = asyncio.ensure_future(CalcHandler.manager.ainvoke(client.id, "double", 1, timeout=2))
        await client.receive_json_from()
        await CalcHandler.manager.adisconnect(client.id, 4003)
        with pytest.raises(ConnectionClosed):
            await task


async def test_method_invoking_its_own_client_gets_the_result() -> None:
    """A method awaiting ``invoke`` on the same socket gets its answer (no deadlock)."""
    async with connect() as client:
        await client.send_json_to(call("ask_client", [5], "outer"))
        request = await answer_next_request(client, result=10)
        assert (request["method"], request["params"]) == ("double", [5])
        assert await client.receive_json_from() == {"jsonrpc": "2.0", "result": 10, "id": "outer"}


async def test_client_notify_from_the_handler() -> None:
    """``RpcHandler.notify`` sends a notification; positional and named both work."""
    async with connect() as client:
        manager = CalcHandler.manager
        await manager.anotify(client.id, "tick", 1, 2)
        await manager.anotify(client.id, "tock", at=3)
        assert await client.next_notification() == note("tick", [1, 2])
        assert await client.next_notification() == note("tock", {"at": 3})


# -- isolation and disconnects ---------------------------------------------------------


async def test_slow_call_does_not_block_other_sockets_or_the_disconnect() -> None:
    """A call stuck on one socket neither delays another socket nor its own close."""
    slow = connect()
    await slow.connect()
    await slow.send_json_to(call("hold", ["never"], 1))
    async with connect() as other:
        assert await other.call("add", 2, 2) == 4
        assert await CalcHandler.manager.acount() == 2
    await slow.disconnect(1001)
    await asyncio.wait_for(handlers.gate("never.cancelled").wait(), 2)
    assert ("cancelled", "never") in handlers.events
    assert await CalcHandler.manager.acount() == 0
    assert await CalcHandler.manager.agroups() == []


async def test_on_disconnect_hook_still_runs_for_rpc_handlers() -> None:
    """An ``RpcHandler`` subclass's ``on_disconnect`` runs with the close code."""
    client = connect()
    await client.connect()
    await client.disconnect(4005)
    assert handlers.events == [("disconnect", client.id, 4005)]


async def test_invoke_with_positional_and_named_params_is_refused() -> None:
    """``invoke`` takes positional or named params, not both."""
    with pytest.raises(TypeError, match="not both"):
        await CalcHandler().invoke("m", 1, x=2)


class HookInvoker(RpcHandler):
    """Tries to invoke its client from ``on_connect`` (the receive loop itself)."""

    outcome: list[BaseException] = []

    async def on_connect(self) -> None:
        try:
            await self.invoke("anything", timeout=5)
        except Exception as exc:
            HookInvoker.outcome.append(exc)


async def test_invoke_from_the_sockets_own_hook_fails_at_once_instead_of_timing_out() -> None:
    """invoke() awaited in on_connect raises InvokeError at once (its answer could never be read)."""
    HookInvoker.outcome.clear()
    app = websocket_app([route("ws/hook/", HookInvoker)], auth=False)
    async with RpcCommunicator(app, "/ws/hook/", timeout=2.0):
        pass
    assert len(HookInvoker.outcome) == 1
    assert isinstance(HookInvoker.outcome[0], InvokeError)
    assert "own hooks" in str(HookInvoker.outcome[0])


async def test_an_answer_to_an_invoke_is_read_even_over_the_rate_limit() -> None:
    """A client's result for a server invoke is settled even when its frame is rate-limited."""
    async with connect() as client:
        invocation = asyncio.ensure_future(CalcHandler.manager.ainvoke(client.id, "ping_back", timeout=2))
        request = await client.receive_json_from(2)
        sock = get_node().sockets[client.id]
        sock.intake._bucket._tokens = 0.0  # type: ignore[attr-defined]  # the next frame is over the limit
        sock.intake._bucket.rate = 1e-9  # type: ignore[attr-defined]
        await client.send_json_to({"jsonrpc": "2.0", "id": request["id"], "result": "late but kept"})
        assert await invocation == "late but kept"
        assert counters.stats().get("rate_limited", 0) >= 1


async def test_manager_invoke_on_a_raw_socket_is_an_invoke_error() -> None:
    """Invoking a socket whose handler does not speak JSON-RPC raises InvokeError, not AttributeError."""
    communicator = WebsocketCommunicator(application, "/ws/echo/")
    connected, _ = await communicator.connect()
    assert connected
    (sid,) = await EchoHandler.manager.aids()
    with pytest.raises(InvokeError, match="does not speak JSON-RPC"):
        await EchoHandler.manager.ainvoke(sid, "x", timeout=1)
    await communicator.disconnect()


async def test_named_params_may_use_the_managers_own_argument_names() -> None:
    """notify(id, "m", method=..., socket_id=...) sends those as named params."""
    async with connect() as client:
        await CalcHandler.manager.anotify(client.id, "m", method="x", socket_id="y")
        got = await client.next_notification()
        assert got == {"jsonrpc": "2.0", "method": "m", "params": {"method": "x", "socket_id": "y"}}


# -- what hostile input costs: per-call accounting, result size, logs -----------------------------


class CostHandler(CalcHandler):
    """CalcHandler plus a result of any size and a store that needs UTF-8, like Redis."""

    rate_limit = None

    @rpc
    async def blob(self, size: int, char: str = "x") -> str:
        return char * size

    @rpc
    async def store(self, text: str) -> int:
        return len(text.encode("utf-8"))  # what redis-py does with a str


cost_app = websocket_app(
    [
        route("ws/cost/", CostHandler),
        route("ws/cost/limited/", CostHandler, rate_limit=(0.001, 10.0)),
        route("ws/cost/pending/", CostHandler, max_pending_calls=5, max_pending_bytes=1000),
        route("ws/cost/result/", CostHandler, max_result_size=1000),
    ],
    auth=False,
)


def cost_client(path: str) -> RpcCommunicator:
    return RpcCommunicator(cost_app, path, timeout=2.0)


async def test_rpc_handlers_accept_64_kib_frames_by_default_and_close_1009_above() -> None:
    """RpcHandler's max_message_size is 64 KiB (a raw handler's is 1 MiB)."""
    assert RpcHandler.max_message_size == 64 * 1024
    async with cost_client("/ws/cost/") as client:
        frame = json.dumps(call("record", ["y" * 1000], 1))
        await client.send_to(text_data=frame + " " * (64 * 1024 - len(frame)))
        assert (await client.receive_json_from())["result"] == "y" * 1000
        await client.send_to(text_data=" " * (64 * 1024 + 1))
        assert (await client.receive_output())["code"] == 1009


async def test_a_batch_costs_one_token_per_member_and_is_refused_whole() -> None:
    """Burst 10: a batch of 8 runs; the next batch of 8 gets -32002 for every call; 2 singles still fit."""
    async with cost_client("/ws/cost/limited/") as client:
        first = await exchange(client, [call("record", [i], i) for i in range(8)])
        assert [r["result"] for r in first] == list(range(8))
        refused = await exchange(client, [call("record", [i], i) for i in range(8, 16)])
        assert [r["error"]["code"] for r in refused] == [RATE_LIMITED] * 8
        assert handlers.events == [("record", i) for i in range(8)]
        assert await client.call("add", 1, 1) == 2
        assert await client.call("add", 2, 2) == 4
        assert (await exchange(client, call("add", [3, 3], 9)))["error"]["code"] == RATE_LIMITED
        assert counters.stats().get("rate_limited", 0) == 2


async def test_each_frame_is_decoded_once_with_a_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """frame_cost decodes; on_receive and on_rate_limited reuse that decoding."""
    decoded: list[Any] = []
    real = protocol.decode
    monkeypatch.setattr(protocol, "decode", lambda data, **kw: decoded.append(data) or real(data, **kw))
    async with cost_client("/ws/cost/limited/") as client:
        await exchange(client, [call("record", [i], i) for i in range(8)])
        await exchange(client, [call("record", [i], i) for i in range(8)])  # refused
        assert len(decoded) == 2


async def test_pending_calls_count_the_members_of_batches() -> None:
    """max_pending_calls = 5: with one call held, a batch of 5 does not fit (-32000 each); 4 do."""
    async with cost_client("/ws/cost/pending/") as client:
        await client.send_json_to(call("hold", ["held"], "held"))
        refused = await exchange(client, [call("record", [i], i) for i in range(5)])
        assert [r["error"]["code"] for r in refused] == [SERVER_BUSY] * 5
        assert counters.stats().get("calls_refused_busy", 0) == 5
        await client.send_json_to([call("record", [i], i) for i in range(4)])
        assert await client.receive_nothing(0.1)
        handlers.gate("held").set()
        assert (await client.receive_json_from())["result"] == "held"
        assert [r["result"] for r in await client.receive_json_from()] == [0, 1, 2, 3]


async def test_pending_calls_are_bounded_in_bytes_but_one_frame_always_fits() -> None:
    """max_pending_bytes = 1000: a 900-byte call waits behind a held one; a second gets -32000."""
    async with cost_client("/ws/cost/pending/") as client:
        await client.send_json_to(call("hold", ["held"], "held"))
        await client.send_json_to(call("record", ["b" * 850], 1))
        refused = await exchange(client, call("record", ["b" * 850], 2))
        assert (refused["id"], refused["error"]["code"]) == (2, SERVER_BUSY)
        handlers.gate("held").set()
        assert (await client.receive_json_from())["id"] == "held"
        assert (await client.receive_json_from())["id"] == 1
        # Nothing pending: a frame over the bound alone is accepted.
        assert await client.call("record", "c" * 2000) == "c" * 2000


async def test_a_result_over_max_result_size_is_answered_result_too_large() -> None:
    """max_result_size = 1000: a bigger result is -32603 "Result too large"; counted; the socket goes on."""
    async with cost_client("/ws/cost/result/") as client:
        reply = await exchange(client, call("blob", [2000], 1))
        assert reply["error"] == {
            "code": INTERNAL_ERROR,
            "message": "Result too large",
            "data": {"max": 1000},
        }
        assert counters.stats().get("results_too_large", 0) == 1
        assert await client.call("blob", 900) == "x" * 900


async def test_in_a_batch_the_member_past_max_result_size_gets_the_error() -> None:
    """The batch's answer stays under the limit: members that would pass it get -32603 instead."""
    async with cost_client("/ws/cost/result/") as client:
        replies = await exchange(
            client, [call("blob", [600], 1), call("blob", [600], 2), call("add", [1, 2], 3)]
        )
        assert len(replies[0]["result"]) == 600
        assert replies[1]["error"]["message"] == "Result too large"
        assert replies[2]["result"] == 3
        assert len(json.dumps(replies, separators=(",", ":"))) <= 1000


async def test_the_answer_size_is_counted_in_utf8_bytes() -> None:
    """Two results of 300 "é" (600 bytes each) do not both fit 1000 bytes, though 300 characters would."""
    async with cost_client("/ws/cost/result/") as client:
        replies = await exchange(client, [call("blob", [300, "é"], 1), call("blob", [300, "é"], 2)])
        assert replies[0]["result"] == "é" * 300
        assert replies[1]["error"]["message"] == "Result too large"


async def test_a_string_with_no_utf8_form_is_invalid_params() -> None:
    """A lone surrogate reaching a UTF-8 store (UnicodeEncodeError) is the client's error: -32602."""
    async with cost_client("/ws/cost/") as client:
        reply = await exchange(client, call("store", ["\udfff"], 1))
        assert reply["error"]["code"] == INVALID_PARAMS
        assert "UTF-8" in reply["error"]["data"]
        assert await client.call("store", "é") == 2


async def test_a_failing_method_is_logged_once_then_counted(caplog: pytest.LogCaptureFixture) -> None:
    """Fifty calls that raise: one ERROR record with the traceback; the 49 others summed up at close."""
    with caplog.at_level(logging.INFO, logger="wsmanager.jsonrpc"):
        async with cost_client("/ws/cost/") as client:
            for i in range(50):
                assert (await exchange(client, call("fail.value", None, i)))["error"][
                    "code"
                ] == INTERNAL_ERROR
            socket_id = client.id
    records = [r for r in caplog.records if socket_id in r.getMessage()]
    assert [r.levelno for r in records] == [logging.ERROR, logging.INFO]
    assert records[0].exc_info is not None
    assert "49 more 'method_error'" in records[1].getMessage()


async def test_bad_input_is_logged_once_per_socket(caplog: pytest.LogCaptureFixture) -> None:
    """A hundred parse errors: one INFO line naming the socket, then the count at close."""
    with caplog.at_level(logging.INFO, logger="wsmanager.jsonrpc"):
        async with cost_client("/ws/cost/") as client:
            for _ in range(100):
                await client.send_to(text_data="{")
                assert (await client.receive_json_from())["error"]["code"] == PARSE_ERROR
            socket_id = client.id
    lines = [r.getMessage() for r in caplog.records if socket_id in r.getMessage()]
    assert len(lines) == 2 and "-32700" in lines[0] and "99 more 'bad_input'" in lines[1]
