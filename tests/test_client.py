"""wsmanager_client's rules without a server: policy, call bookkeeping, serving, and the
client's behaviour against a scripted ``websockets`` server on loopback.

The demo-against-daphne proofs are in tests/e2e/test_python_client_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import math
import pickle
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from wsmanager_client import (
    Client,
    Closed,
    ConnectionClosed,
    HandshakeRefused,
    InvokeTimeout,
    NotConnected,
    Options,
    Reconnecting,
    RemoteError,
    RpcError,
    State,
    backoff_delay,
    connect,
    is_final_close_code,
)
from wsmanager_client import __all__ as client_all
from wsmanager_client.calls import CallTable, Note
from wsmanager_client.exceptions import WsManagerError
from wsmanager_client.policy import TRANSITIONS, check_transition, should_reconnect
from wsmanager_client.protocol import EncodeError, Response, decode
from wsmanager_client.serving import Handlers
from wsmanager_client.transport import refusal_detail

# --- policy ---------------------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1003, 1008, 4400, 4403, 4429, 4499])
def test_final_close_codes_are_not_retried(code: int) -> None:
    assert is_final_close_code(code)


@pytest.mark.parametrize("code", [1001, 1006, 1009, 1011, 1013, 4000, 4399, 4500, 4999])
def test_other_close_codes_are_retried(code: int) -> None:
    assert not is_final_close_code(code)
    assert should_reconnect(Options(), 0, code, "")


def test_backoff_grows_exponentially_up_to_the_cap_before_jitter() -> None:
    options = Options(reconnect_delay=1.0, reconnect_factor=2.0, reconnect_max_delay=30.0)
    assert [backoff_delay(n, options, rand=lambda: 0.0) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(10_000, options, rand=lambda: 0.0) == 30.0  # no overflow


def test_jitter_takes_off_at_most_its_fraction_of_the_delay() -> None:
    options = Options(reconnect_jitter=0.5)
    assert backoff_delay(2, options, rand=lambda: 0.999999) == pytest.approx(1.0, abs=1e-5)
    assert backoff_delay(2, options, rand=lambda: 0.5) == 1.5
    assert backoff_delay(2, Options(reconnect_jitter=0), rand=lambda: 0.9) == 2.0
    assert backoff_delay(2, Options(reconnect_jitter=1), rand=lambda: 0.75) == 0.5
    with pytest.raises(ValueError, match="from 1"):
        backoff_delay(0, options)


def test_reconnect_decision_honours_the_switch_the_limit_and_a_custom_policy() -> None:
    assert not should_reconnect(Options(reconnect=False), 0, 1006, "")
    assert not should_reconnect(Options(max_reconnect_attempts=3), 3, 1006, "")
    assert should_reconnect(Options(max_reconnect_attempts=3), 2, 1006, "")
    custom = Options(should_reconnect=lambda code, reason: code == 1000 and reason == "again")
    assert should_reconnect(custom, 0, 1000, "again")
    assert not should_reconnect(custom, 0, 1006, "")


def test_every_transition_of_the_table_passes_and_others_raise_naming_the_allowed_ones() -> None:
    for current, allowed in TRANSITIONS.items():
        for new in State:
            if new in allowed:
                check_transition(current, new)
            else:
                with pytest.raises(RuntimeError, match=f"{current.value} -> {new.value}; expected one of"):
                    check_transition(current, new)


@pytest.mark.parametrize(
    "bad",
    [
        {"timeout": 0},
        {"timeout": -1},
        {"connect_timeout": "10"},
        {"heartbeat_timeout": None},
        {"reconnect_jitter": 1.5},
        {"reconnect_factor": 0.5},
        {"queue_size": -1},
        {"max_reconnect_attempts": -1},
        {"should_reconnect": 5},
    ],
)
def test_invalid_options_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        Options(**bad)


def test_unknown_option_names_and_bad_urls_are_refused() -> None:
    with pytest.raises(TypeError, match="reconnectDelay"):
        Client("ws://x/", reconnectDelay=5)
    with pytest.raises(TypeError, match="url must be"):
        Client(5)  # type: ignore[arg-type]


def test_exports_exist_and_the_exceptions_are_the_servers_own() -> None:
    """The client's exceptions are the very classes the server raises and catches (one definition)."""
    import wsmanager
    import wsmanager.client as shim
    import wsmanager_client as module
    from wsmanager import exceptions

    assert [name for name in client_all if not hasattr(module, name)] == []
    assert client_all == sorted(client_all)
    assert module.RemoteError is exceptions.RemoteError is wsmanager.RemoteError
    assert module.InvokeTimeout is exceptions.InvokeTimeout
    assert module.ConnectionClosed is exceptions.ConnectionClosed
    assert module.RpcError is exceptions.RpcError
    assert module.WsManagerError is exceptions.WsManagerError is wsmanager.WsManagerError
    assert issubclass(NotConnected, ConnectionClosed) and issubclass(NotConnected, WsManagerError)
    assert issubclass(exceptions.ConfigurationError, module.WsManagerError)
    assert shim.__all__ == client_all
    assert all(getattr(shim, name) is getattr(module, name) for name in client_all)


CLIENT_MODULES = [
    "wsmanager_client",
    "wsmanager_client.calls",
    "wsmanager_client.connection",
    "wsmanager_client.encodings",
    "wsmanager_client.events",
    "wsmanager_client.exceptions",
    "wsmanager_client.limits",
    "wsmanager_client.policy",
    "wsmanager_client.protocol",
    "wsmanager_client.recovery",
    "wsmanager_client.serving",
    "wsmanager_client.session",
    "wsmanager_client.streams",
    "wsmanager_client.topics",
    "wsmanager_client.transport",
]


@pytest.mark.parametrize("module_name", CLIENT_MODULES)
def test_each_client_module_declares_all_with_existing_names(module_name: str) -> None:
    import importlib

    module = importlib.import_module(module_name)
    names = module.__all__
    assert names and len(set(names)) == len(names)
    assert [name for name in names if not hasattr(module, name)] == []


def test_the_client_modules_listed_are_all_of_them() -> None:
    from pathlib import Path

    import wsmanager_client

    found = {f"wsmanager_client.{p.stem}" for p in Path(wsmanager_client.__file__).parent.glob("[!_]*.py")}
    assert found | {"wsmanager_client"} == set(CLIENT_MODULES)


def test_not_connected_carries_its_reason_and_pickles() -> None:
    exc = NotConnected("sid", "who", "queue-full")
    again = pickle.loads(pickle.dumps(exc))
    assert (again.socket_id, again.method, again.reason) == ("sid", "who", "queue-full")
    assert str(again) == str(exc) == "not connected: 'who' was not sent because the queue is full"
    with pytest.raises(ValueError, match="unknown reason"):
        NotConnected("sid", "who", "nope")


def test_handshake_refused_carries_status_and_detail_and_pickles() -> None:
    exc = HandshakeRefused("", "connect", 404, "no such room")
    assert (exc.status, exc.detail, exc.reason, exc.method) == (404, "no such room", "refused", "connect")
    assert str(exc) == "could not connect because the server refused the handshake: HTTP 404: no such room"
    assert isinstance(exc, NotConnected) and isinstance(exc, ConnectionClosed)
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is HandshakeRefused and again.__dict__ == exc.__dict__ and str(again) == str(exc)
    bare = HandshakeRefused("sid", "who", 403)
    assert str(bare) == "not connected: 'who' was not sent because the server refused the handshake: HTTP 403"


def response(body: bytes, content_type: str | None = "text/plain") -> Any:
    from websockets.datastructures import Headers
    from websockets.http11 import Response as HttpResponse

    headers = Headers() if content_type is None else Headers({"Content-Type": content_type})
    return HttpResponse(403, "Forbidden", headers, body)


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        (b"origin not allowed\n", "text/plain; charset=utf-8", "origin not allowed"),
        (b"  two\n\tlines  ", "text/plain", "two lines"),
        (b"no type given", None, "no type given"),
        (b"<!doctype html><h1>Forbidden</h1>", None, ""),
        (b"<h1>Forbidden</h1>", "text/html", ""),
        (b'{"reason": "log in"}', "application/json", "log in"),
        (b'{"detail": "expired"}', "application/problem+json", "expired"),
        (b'{"error": {"message": "nested"}}', "application/json", "nested"),
        (b'"just a string"', "application/json", "just a string"),
        (b'{"code": 1}', "application/json", ""),
        (b"{not json", "application/json", ""),
        (b"\xff\xfe", "text/plain", ""),
        (b"bell\x07 and escape\x1b[31m", "text/plain", "bell and escape[31m"),
        (b"", "text/plain", ""),
    ],
)
def test_the_servers_reason_is_read_from_a_text_or_json_body(
    body: bytes, content_type: str | None, detail: str
) -> None:
    assert refusal_detail(response(body, content_type)) == detail


def test_the_servers_reason_is_cut_to_500_characters() -> None:
    assert refusal_detail(response(b"x" * 100_000)) == "x" * 500


# --- the call table -------------------------------------------------------------------


async def test_calls_are_numbered_from_one_and_encoded_by_the_protocol_module() -> None:
    table = CallTable(queue_size=10)
    first = table.new_call("who", None, None)
    second = table.new_call("send", ["hi"], None)
    named = table.new_call("whisper", {"to": "x", "text": "y"}, None)
    assert json.loads(first.text) == {"jsonrpc": "2.0", "method": "who", "id": 1}
    assert json.loads(second.text) == {"jsonrpc": "2.0", "method": "send", "params": ["hi"], "id": 2}
    assert json.loads(named.text)["params"] == {"to": "x", "text": "y"}
    for call in (first, second, named):
        table.settle(call, result=None)


async def test_unencodable_params_raise_at_once_and_leave_nothing_behind() -> None:
    table = CallTable(queue_size=10)
    with pytest.raises(EncodeError):
        table.new_call("send", [object()], 5.0)
    with pytest.raises(EncodeError):
        table.new_call("send", [math.nan], 5.0)
    with pytest.raises(TypeError):
        table.new_call(5, None, None)  # type: ignore[arg-type]
    assert (table.pending, table.queued) == (0, 0)


async def test_a_result_and_an_error_settle_their_calls_by_id() -> None:
    table = CallTable(queue_size=10)
    table.socket_id = "me"
    ok, bad = table.new_call("who", None, None), table.new_call("send", [""], None)
    table.sent(ok)
    table.sent(bad)
    assert table.resolve(Response(bad.id, error=decode_error(4000, "Text is empty", {"max": 1})))
    assert table.resolve(Response(float(ok.id), result=[1, 2]))  # 1.0 answers id 1
    assert await ok.future == [1, 2]
    with pytest.raises(RemoteError) as info:
        await bad.future
    assert (info.value.code, info.value.message, info.value.data) == (4000, "Text is empty", {"max": 1})
    assert (info.value.socket_id, info.value.method) == ("me", "send")
    assert table.pending == 0


def decode_error(code: int, message: str, data: Any = None) -> Any:
    item = decode(
        json.dumps({"jsonrpc": "2.0", "error": {"code": code, "message": message, "data": data}, "id": 1})
    )
    return item.items[0].error  # type: ignore[union-attr]


async def test_unknown_null_and_late_answers_are_ignored() -> None:
    table = CallTable(queue_size=10)
    call = table.new_call("slow", None, 0.01)
    table.sent(call)
    with pytest.raises(InvokeTimeout) as info:
        await call.future
    assert info.value.timeout == 0.01 and info.value.method == "slow"
    assert not table.resolve(Response(call.id, result="late"))
    assert not table.resolve(Response(None, result="x"))
    assert not table.resolve(Response("1", result="x"))
    assert not table.resolve(Response(999, result="x"))
    assert table.pending == 0


async def test_a_call_settles_once_whatever_comes_second() -> None:
    table = CallTable(queue_size=10)
    call = table.new_call("who", None, None)
    table.sent(call)
    table.settle(call, result="first")
    table.settle(call, exc=RuntimeError("second"))
    table.fail_in_flight(1006)
    assert await call.future == "first"


async def test_a_queued_call_that_times_out_leaves_the_queue_and_is_never_sent() -> None:
    table = CallTable(queue_size=10)
    call = table.new_call("who", None, 0.01)
    table.enqueue(call)
    table.enqueue(Note("n", "{}"))
    assert table.queued == 2
    with pytest.raises(InvokeTimeout):
        await call.future
    assert table.queued == 1
    assert table.take_queued() == Note("n", "{}")
    assert table.take_queued() is None


async def test_the_queue_keeps_calls_and_notifications_in_order() -> None:
    table = CallTable(queue_size=10)
    a = table.new_call("a", None, None)
    note = table.new_note("b", ["x"])
    c = table.new_call("c", None, None)
    for entry in (a, note, c):
        table.enqueue(entry)
    assert [table.take_queued() for _ in range(3)] == [a, note, c]
    assert json.loads(note.text) == {"jsonrpc": "2.0", "method": "b", "params": ["x"]}
    for call in (a, c):
        table.settle(call)


async def test_the_refusal_reasons_in_their_order_of_precedence() -> None:
    table = CallTable(queue_size=1)
    assert table.refusal(closed=False, fail_fast=False) is None
    table.enqueue(Note("n", "{}"))
    assert table.refusal(closed=False, fail_fast=False) == "queue-full"
    assert table.refusal(closed=False, fail_fast=False, queueable=False) == "not-queued"
    assert table.refusal(closed=False, fail_fast=True, queueable=False) == "fail-fast"
    assert table.refusal(closed=True, fail_fast=True, queueable=False) == "closed"


async def test_a_drop_fails_calls_in_flight_and_keeps_queued_ones() -> None:
    table = CallTable(queue_size=10)
    table.socket_id = "old"
    sent, queued = table.new_call("a", None, None), table.new_call("b", None, None)
    table.sent(sent)
    table.enqueue(queued)
    table.fail_in_flight(1011)
    with pytest.raises(ConnectionClosed) as info:
        await sent.future
    assert (info.value.socket_id, info.value.code) == ("old", 1011)
    assert not isinstance(info.value, NotConnected)
    assert table.queued == 1 and not queued.future.done()
    table.fail_queued()
    with pytest.raises(NotConnected) as closed:
        await queued.future
    assert closed.value.reason == "closed"


# --- serving the server ------------------------------------------------------------------


def requests(frame: Any) -> tuple[list[Any], bool]:
    decoded = decode(json.dumps(frame))
    return list(decoded.items), decoded.batch


async def answer(handlers: Handlers, frame: Any) -> Any:
    text = await handlers.answer(*requests(frame))
    return None if text is None else json.loads(text)


def call(method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id}
    if params is not None:
        message["params"] = params
    return message


async def test_positional_params_are_arguments_and_named_ones_keywords() -> None:
    handlers = Handlers()
    handlers.on("add", lambda a, b: a + b)

    async def greet(*, name: str, punct: str = "!") -> str:
        await asyncio.sleep(0)
        return f"hi {name}{punct}"

    handlers.on("greet", greet)
    handlers.on("nothing", lambda: None)
    assert await answer(handlers, call("add", [2, 3])) == {"jsonrpc": "2.0", "result": 5, "id": 1}
    assert (await answer(handlers, call("greet", {"name": "ann"}, "g")))["result"] == "hi ann!"
    assert await answer(handlers, call("nothing")) == {"jsonrpc": "2.0", "result": None, "id": 1}


async def test_errors_answer_their_codes() -> None:
    handlers = Handlers()
    called: list[Any] = []

    def refuse() -> None:
        raise RpcError(4321, "Refused", {"why": "no"})

    async def crash() -> None:
        raise KeyError("secret detail")

    handlers.on("refuse", refuse)
    handlers.on("crash", crash)
    handlers.on("two", lambda a, b: called.append((a, b)))
    handlers.on("unencodable", lambda: object())
    assert (await answer(handlers, call("refuse")))["error"] == {
        "code": 4321,
        "message": "Refused",
        "data": {"why": "no"},
    }
    crashed = await answer(handlers, call("crash"))
    assert crashed["error"] == {"code": -32603, "message": "Internal error"}
    assert "secret" not in json.dumps(crashed)
    assert (await answer(handlers, call("nope")))["error"] == {
        "code": -32601,
        "message": "Method not found",
        "data": "nope",
    }
    bad = await answer(handlers, call("two", [1]))
    assert bad["error"]["code"] == -32602 and "missing" in bad["error"]["data"]
    assert called == []
    assert (await answer(handlers, call("unencodable")))["error"]["code"] == -32603


async def test_notifications_are_never_answered_and_failures_reach_on_error() -> None:
    seen: list[BaseException] = []
    handlers = Handlers(on_error=seen.append)
    got: list[Any] = []
    handlers.on("message", lambda **m: got.append(m))

    def boom() -> None:
        raise ValueError("boom")

    handlers.on("boom", boom)
    note = {"jsonrpc": "2.0", "method": "message", "params": {"from": None, "text": "hi"}}
    assert await answer(handlers, note) is None
    assert got == [{"from": None, "text": "hi"}]
    assert await answer(handlers, {"jsonrpc": "2.0", "method": "boom"}) is None
    assert await answer(handlers, {"jsonrpc": "2.0", "method": "unknown"}) is None
    assert await answer(handlers, {"jsonrpc": "2.0", "method": "message", "params": [1]}) is None
    assert [type(e) for e in seen] == [ValueError, TypeError]  # boom raised; [1] does not bind to **m


async def test_rpc_ping_is_built_in_and_rpc_names_cannot_be_served() -> None:
    handlers = Handlers()
    assert await answer(handlers, call("rpc.ping")) == {"jsonrpc": "2.0", "result": "pong", "id": 1}
    assert await answer(handlers, {"jsonrpc": "2.0", "method": "rpc.ping"}) is None
    with pytest.raises(ValueError, match=r"rpc\."):
        handlers.on("rpc.ping", lambda: "mine")
    with pytest.raises(TypeError):
        handlers.on("x", 5)  # type: ignore[arg-type]


async def test_a_batch_is_answered_in_order_without_its_notifications() -> None:
    """The first call finishes last (it waits until the last one ran): answers keep the calls' order."""
    handlers = Handlers()
    last_ran = asyncio.Event()

    async def slow(x: int) -> int:
        await last_ran.wait()
        return x

    def fast(x: int) -> int:
        if x == 2:
            last_ran.set()
        return x

    handlers.on("slow", slow)
    handlers.on("fast", fast)
    batch = [
        call("slow", [1], "a"),
        {"jsonrpc": "2.0", "method": "fast", "params": [0]},
        call("fast", [2], "b"),
        7,
    ]
    replies = await answer(handlers, batch)
    assert [r.get("id") for r in replies] == ["a", "b", None]
    assert [r.get("result") for r in replies[:2]] == [1, 2]
    assert replies[2]["error"]["code"] == -32600
    assert await answer(handlers, [{"jsonrpc": "2.0", "method": "fast", "params": [0]}]) is None


async def test_the_remover_removes_only_its_own_handler() -> None:
    handlers = Handlers()
    remove_first = handlers.on("m", lambda: 1)
    handlers.on("m", lambda: 2)
    remove_first()
    assert "m" in handlers
    assert (await answer(handlers, call("m")))["result"] == 2
    handlers.on("m", None)
    assert "m" not in handlers


# --- the client without a server ---------------------------------------------------------------


async def test_an_idle_client_queues_calls_until_their_timeout() -> None:
    client = Client("ws://127.0.0.1:9/")
    waiting = asyncio.create_task(client.invoke("who", timeout=0.05))
    await asyncio.sleep(0)
    assert client.queued == 1 and client.state is State.IDLE
    with pytest.raises(InvokeTimeout):
        await waiting
    assert client.queued == 0


async def test_calls_that_cannot_be_queued_fail_at_once_with_their_reason() -> None:
    client = Client("ws://127.0.0.1:9/", queue_size=1, queue_calls=False)
    with pytest.raises(NotConnected) as not_queued:
        await client.invoke("who")
    assert not_queued.value.reason == "not-queued"
    await client.notify("first")  # notifications still wait
    with pytest.raises(NotConnected) as full:
        await client.notify("second")
    assert full.value.reason == "queue-full"
    fast = Client("ws://127.0.0.1:9/", fail_fast=True)
    for attempt in (fast.invoke("who"), fast.notify("x")):
        with pytest.raises(NotConnected, match="fail_fast"):
            await attempt


async def test_a_closed_client_refuses_everything_and_fails_what_was_queued() -> None:
    client = Client("ws://127.0.0.1:9/")
    queued = asyncio.create_task(client.invoke("who"))
    await asyncio.sleep(0)
    await client.close()
    assert client.state is State.CLOSED
    with pytest.raises(NotConnected, match="client is closed"):
        await queued
    with pytest.raises(NotConnected):
        await client.invoke("who")
    with pytest.raises(NotConnected):
        await client.notify("x")


async def test_bad_call_arguments_raise_before_anything_is_queued() -> None:
    client = Client("ws://127.0.0.1:9/")
    with pytest.raises(TypeError, match="positional or named"):
        await client.invoke("m", 1, b=2)
    with pytest.raises(ValueError, match="timeout"):
        await client.invoke("m", timeout=0)
    with pytest.raises(EncodeError):
        await client.notify("m", {1, 2})
    assert client.queued == 0


async def test_a_url_that_cannot_work_gives_up_at_once() -> None:
    closed: list[Closed] = []
    client = Client("http://not-a-websocket/", on_closed=closed.append)
    with pytest.raises(NotConnected) as info:
        await client.connect()
    assert info.value.__cause__ is not None
    assert client.state is State.CLOSED
    assert closed[0].will_reconnect is False and "cannot open" in closed[0].reason


# --- the client against a scripted server ------------------------------------------------------------

Script = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Script], Awaitable[str]]]:
    """Start a websockets server on loopback running ``script`` for each connection; yields its URL."""
    servers: list[Any] = []

    async def start(script: Script) -> str:
        server = await serve(script, "127.0.0.1", 0)
        servers.append(server)
        port = next(iter(server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def hello(ws: ServerConnection, sid: str) -> None:
    await ws.send(json.dumps({"jsonrpc": "2.0", "method": "rpc.connected", "params": {"id": sid}}))


async def test_each_connection_is_announced_and_reconnections_name_the_previous_id(scripted: Any) -> None:
    """The server drops the first socket (1011): connected, closed, reconnecting, connected, reconnected."""
    count = 0

    async def script(ws: ServerConnection) -> None:
        nonlocal count
        count += 1
        await hello(ws, f"s{count}")
        if count == 1:
            await ws.close(1011, "oops")
        else:
            await ws.wait_closed()

    events: list[Any] = []
    fifth = asyncio.Event()

    def record(event: Any) -> None:
        events.append(event)
        if len(events) == 5:
            fifth.set()

    url = await scripted(script)
    client = Client(
        url,
        reconnect_delay=0.01,
        on_connected=record,
        on_closed=record,
        on_reconnecting=record,
        on_reconnected=record,
    )
    assert await client.connect() == "s1"
    await asyncio.wait_for(fifth.wait(), 5)
    assert [type(e).__name__ for e in events] == [
        "Connected",
        "Closed",
        "Reconnecting",
        "Connected",
        "Reconnected",
    ]
    assert events[1] == Closed(1011, "oops", True, True)
    assert isinstance(events[2], Reconnecting) and events[2].attempt == 1 and events[2].code == 1011
    assert events[4].previous_id == "s1" and client.id == "s2"
    await client.close()
    assert events[-1] == Closed(1000, "", True, False)


@pytest.mark.parametrize(
    ("code", "retried"), [(1000, False), (4403, False), (1008, False), (4000, True), (1013, True)]
)
async def test_the_close_code_decides_whether_to_reconnect(scripted: Any, code: int, retried: bool) -> None:
    connections = 0

    async def script(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await hello(ws, f"s{connections}")
        if connections == 1:
            await ws.close(code)
        else:
            await ws.wait_closed()

    url = await scripted(script)
    done: asyncio.Future[Closed] = asyncio.get_running_loop().create_future()
    reconnected: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def closed(event: Closed) -> None:
        if not event.will_reconnect and not done.done():
            done.set_result(event)

    client = Client(url, reconnect_delay=0.01, on_closed=closed, on_reconnected=reconnected.set_result)
    await client.connect()
    finished = await asyncio.wait({done, reconnected}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    if retried:
        assert reconnected in finished[0] and client.id == "s2"
    else:
        assert done in finished[0] and done.result().code == code and client.state is State.CLOSED
    await client.close()


async def test_queued_messages_go_out_first_in_order_and_calls_made_offline_are_answered(
    scripted: Any,
) -> None:
    received: list[Any] = []

    async def script(ws: ServerConnection) -> None:
        await hello(ws, "s1")
        async for text in ws:
            message = json.loads(text)
            received.append(message["method"])
            if "id" in message:
                await ws.send(
                    json.dumps({"jsonrpc": "2.0", "result": message["method"], "id": message["id"]})
                )

    url = await scripted(script)
    client = Client(url, heartbeat_interval=None)
    first = asyncio.create_task(client.invoke("one"))
    await asyncio.sleep(0)
    await client.notify("two")
    third = asyncio.create_task(client.invoke("three"))
    await asyncio.sleep(0)
    assert client.queued == 3
    await client.connect()
    assert await first == "one" and await third == "three"
    assert received == ["one", "two", "three"]
    await client.close()


async def test_answers_to_server_calls_go_back_on_the_same_socket(scripted: Any) -> None:
    answers: asyncio.Queue[Any] = asyncio.Queue()

    async def script(ws: ServerConnection) -> None:
        await hello(ws, "s1")
        await ws.send(json.dumps(call("double", [21], 7)))
        await ws.send(json.dumps([call("double", [1], "a"), call("nope", None, "b")]))
        await ws.send("not json")
        async for text in ws:
            await answers.put(json.loads(text))

    url = await scripted(script)
    async with connect(url, handlers={"double": lambda x: 2 * x}) as client:
        assert client.id == "s1"
        replies = [await asyncio.wait_for(answers.get(), 5) for _ in range(3)]
    # Answers go out as they are ready (never by position): sort them by the request they answer.
    got = sorted(replies, key=lambda r: 1 if isinstance(r, list) else 0 if r["id"] == 7 else 2)
    assert got[0] == {"jsonrpc": "2.0", "result": 42, "id": 7}
    assert got[1] == [
        {"jsonrpc": "2.0", "result": 2, "id": "a"},
        {
            "jsonrpc": "2.0",
            "error": {"code": -32601, "message": "Method not found", "data": "nope"},
            "id": "b",
        },
    ]
    assert got[2] == {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}


async def test_a_call_in_flight_when_the_socket_drops_fails_with_connection_closed(scripted: Any) -> None:
    async def script(ws: ServerConnection) -> None:
        await hello(ws, "s1")
        await ws.recv()  # the call: never answered
        await ws.close(1011)

    url = await scripted(script)
    client = Client(url, reconnect=False)
    await client.connect()
    with pytest.raises(ConnectionClosed) as info:
        await client.invoke("who")
    assert (info.value.code, info.value.socket_id) == (1011, "s1")
    assert not isinstance(info.value, NotConnected)
    await client.close()


async def test_the_heartbeat_drops_a_socket_whose_server_stops_answering(scripted: Any) -> None:
    """The server answers nothing (not even rpc.ping): closed 1006 "heartbeat timeout", then a new socket."""
    count = 0

    async def script(ws: ServerConnection) -> None:
        nonlocal count
        count += 1
        await hello(ws, f"s{count}")
        await ws.wait_closed()

    url = await scripted(script)
    closed: asyncio.Future[Closed] = asyncio.get_running_loop().create_future()
    reconnected: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    client = Client(
        url,
        heartbeat_interval=0.05,
        heartbeat_timeout=0.1,
        reconnect_delay=0.01,
        on_closed=lambda e: closed.done() or closed.set_result(e),
        on_reconnected=lambda e: reconnected.done() or reconnected.set_result(e),
    )
    await client.connect()
    event = await asyncio.wait_for(closed, 5)
    assert (event.code, event.reason, event.was_clean, event.will_reconnect) == (
        1006,
        "heartbeat timeout",
        False,
        True,
    )
    assert (await asyncio.wait_for(reconnected, 5)).previous_id == "s1"
    await client.close()


async def test_an_error_with_a_null_id_reaches_on_error(scripted: Any) -> None:
    async def script(ws: ServerConnection) -> None:
        await hello(ws, "s1")
        await ws.send(
            json.dumps({"jsonrpc": "2.0", "error": {"code": -32002, "message": "Rate limit"}, "id": None})
        )
        await ws.wait_closed()

    errors: asyncio.Queue[BaseException] = asyncio.Queue()
    url = await scripted(script)
    async with connect(url, on_error=errors.put_nowait):
        error = await asyncio.wait_for(errors.get(), 5)
    assert isinstance(error, RpcError) and error.code == -32002


async def test_giving_up_after_max_attempts_rejects_connect_with_the_last_failure() -> None:
    reconnecting: list[Reconnecting] = []
    client = Client(
        "ws://127.0.0.1:9/",
        reconnect_delay=0.01,
        max_reconnect_attempts=2,
        on_reconnecting=reconnecting.append,
    )
    with pytest.raises(NotConnected) as info:
        await asyncio.wait_for(client.connect(), 10)
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.reason == "closed" and info.value.detail.startswith("cannot connect: ")
    assert str(info.value).startswith("could not connect because the client is closed: cannot connect: ")
    assert [e.attempt for e in reconnecting] == [1, 2]
    assert client.state is State.CLOSED


async def test_cancelling_the_caller_forgets_a_queued_call() -> None:
    client = Client("ws://127.0.0.1:9/")
    waiting = asyncio.create_task(client.invoke("who", timeout=math.inf))
    await asyncio.sleep(0)
    assert client.queued == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert client.queued == 0


async def test_connect_while_open_returns_the_same_id(scripted: Any) -> None:
    async def script(ws: ServerConnection) -> None:
        await hello(ws, "only")
        await ws.wait_closed()

    url = await scripted(script)
    client = await connect(url)
    assert (await client.connect(), client.id, client.connected) == ("only", "only", True)
    await client.close()
    assert client.id is None and client.state is State.CLOSED


async def test_close_while_the_handshake_hangs_stops_the_attempt_and_rejects_connect() -> None:
    """A server that accepts TCP and never answers (a frozen process): close() ends it all."""
    accepted = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        accepted.set()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Client(f"ws://127.0.0.1:{port}/")
    connecting = asyncio.create_task(client.connect())
    await asyncio.wait_for(accepted.wait(), 5)
    assert client.state is State.CONNECTING
    await client.close()
    with pytest.raises(NotConnected):
        await connecting
    assert client.state is State.CLOSED
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


def test_importing_the_client_loads_neither_django_nor_the_server() -> None:
    """A fresh interpreter imports wsmanager_client and its client classes without loading wsmanager,
    Django, Channels, daphne or Twisted (in the dev environment, where all of them are installed)."""
    import subprocess
    import sys

    script = (
        "import json, sys, wsmanager_client; wsmanager_client.Client; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} "
        "& {'wsmanager', 'django', 'channels', 'daphne', 'twisted', 'websockets'})))"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == ["websockets"]


def test_the_server_imports_the_shared_modules_without_the_client_classes() -> None:
    """The server needs only wsmanager_client.protocol and .exceptions: importing those (as the
    server does) loads neither the client's connection classes nor websockets."""
    import subprocess
    import sys

    script = (
        "import json, sys; from wsmanager_client import protocol, exceptions; "
        "names = [m for m in sys.modules if m.startswith(('wsmanager_client', 'websockets'))]; "
        "print(json.dumps(sorted(names)))"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    shared = ["wsmanager_client", "wsmanager_client.exceptions", "wsmanager_client.protocol"]
    assert json.loads(run.stdout) == shared
