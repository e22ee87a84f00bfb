"""wsmanager_client against a hostile server: a real ``websockets`` server in this process that
sends what no wsmanager server would (a frame of 64 MiB, a batch of 20,000 calls, calls and
notifications without end to handlers that do not finish). The server floods once the client
is connected, and yields to the event loop after each frame, as a server in another process
would not hold the client's loop.

The client must stay bounded (memory, tasks, handlers in flight), lose nothing that it could
keep, and say what it refused: ``on_error`` gets a :class:`LimitExceeded`, the state
callbacks see the close, ``client.stats`` counts every refusal. Memory is measured with
tracemalloc (the server's buffers are in this process too, so the bounds are wide); every
wait is for a condition, bounded by ``WAIT`` so that a failure shows instead of hanging.
"""

from __future__ import annotations

import asyncio
import json
import math
import pickle
import struct
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from wsmanager_client import Client, Closed, LimitExceeded, Options, State, WsManagerError
from wsmanager_client.limits import Slots

WAIT = 20.0
MiB = 1024 * 1024
PAD = "x" * 10_000  # makes each flooding frame weigh 10 KB, so kernel buffers hold few of them

Script = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture
async def hostile() -> AsyncIterator[Callable[[Script], Awaitable[str]]]:
    """Start a websockets server on loopback running ``script`` per connection; yields its URL.

    At the end (whatever the test did) its connections are dropped: a hostile server
    blocked in a send to a paused client would otherwise never finish its handler."""
    servers: list[Any] = []

    async def start(script: Script) -> str:
        # No compression: each frame weighs on the wire what it weighs in memory, so that a
        # paused client fills the kernel's buffers and the server's writes back up.
        server = await serve(script, "127.0.0.1", 0, max_size=None, compression=None)
        servers.append(server)
        port = next(iter(server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/"

    yield start
    for server in servers:
        for connection in list(server.connections):
            connection.transport.abort()
        server.close()
        await server.wait_closed()


@pytest.fixture
def memory() -> Iterator[Callable[[], int]]:
    """tracemalloc on for the test; yields a function giving the peak growth in bytes so far."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    yield lambda: tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds (checked every few milliseconds), at most ``WAIT`` seconds."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.005)


async def hello(ws: ServerConnection) -> None:
    await ws.send(json.dumps({"jsonrpc": "2.0", "method": "rpc.connected", "params": {"id": "s1"}}))


def call(method: str, params: list[Any], call_id: int) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": call_id})


def note(method: str, params: list[Any]) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params})


def backed_up(ws: ServerConnection | None) -> bool:
    """The server's writes back up: the client stopped reading and the kernel's buffers are full."""
    transport = ws.transport if ws is not None else None
    return transport is not None and transport.get_write_buffer_size() > 32 * 1024


class Recorder:
    """The callbacks' events, in order."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.closed: list[Closed] = []

    def callbacks(self) -> dict[str, Callable[[Any], None]]:
        return {"on_error": self.errors.append, "on_closed": self.closed.append}

    def limits(self, name: str) -> list[LimitExceeded]:
        return [e for e in self.errors if isinstance(e, LimitExceeded) and e.limit == name]


# --- the rules without a server --------------------------------------------------------------------


def test_slots_fit_up_to_the_limit_and_a_larger_frame_only_when_empty() -> None:
    slots = Slots(3)
    assert slots.fits(3) and slots.fits(4)  # nothing in flight: even a longer frame fits
    slots.take(2)
    assert slots.fits(1) and not slots.fits(2)
    slots.take(1)
    assert not slots.fits(1)
    slots.give(3)
    assert slots.fits(5)  # longer than the limit: fits only when nothing is in flight
    slots.take(5)
    assert not slots.fits(1)
    assert Slots(None).fits(10**9)


def test_a_refusal_is_reported_once_until_a_slot_frees_below_the_limit() -> None:
    slots = Slots(2)
    slots.take(2)
    assert [slots.refuse(), slots.refuse(), slots.refuse()] == [True, False, False]
    slots.give(1)
    slots.take(1)
    assert slots.refuse() is True  # a new episode


def test_the_limits_are_options_with_defaults_and_checked() -> None:
    options = Options()
    assert (options.max_message_size, options.max_batch_size, options.max_concurrent_handlers) == (
        1 * MiB,
        100,
        100,
    )
    assert Options(max_message_size=None, max_batch_size=None, max_concurrent_handlers=None)
    for bad in (0, -1, True, 1.5, "10"):
        for name in ("max_message_size", "max_batch_size", "max_concurrent_handlers"):
            with pytest.raises(ValueError, match=name):
                Options(**{name: bad})


def test_limit_exceeded_says_what_happened_and_pickles() -> None:
    exc = LimitExceeded("max_batch_size", 100, "answered -32600, nothing run")
    assert (exc.limit, exc.maximum, exc.action) == ("max_batch_size", 100, "answered -32600, nothing run")
    assert str(exc) == "the server went over max_batch_size (100): answered -32600, nothing run"
    again = pickle.loads(pickle.dumps(exc))
    assert again.__dict__ == exc.__dict__ and str(again) == str(exc)
    assert isinstance(exc, WsManagerError)


# --- one frame over max_message_size -----------------------------------------------------------


async def test_a_frame_over_max_message_size_closes_1009_without_being_read(
    hostile: Callable[[Script], Awaitable[str]], memory: Callable[[], int]
) -> None:
    """The server announces a 64 MiB text frame and streams it: the client closes with 1009 after
    the header (the default max_message_size is 1 MiB), reads no more than that, and says so."""
    streamed = 0

    async def script(ws: ServerConnection) -> None:
        nonlocal streamed
        await hello(ws)
        size = 64 * MiB
        ws.transport.write(b"\x81\x7f" + struct.pack("!Q", size))  # FIN + text, 64-bit length, unmasked
        chunk = b" " * 65536
        while streamed < size and not ws.transport.is_closing():
            ws.transport.write(chunk)
            streamed += len(chunk)
            await ws.drain()
            await asyncio.sleep(0)

    events = Recorder()
    client = Client(await hostile(script), reconnect=False, heartbeat_interval=None, **events.callbacks())
    await client.connect()
    await until(lambda: client.state is State.CLOSED, "the client closed")
    assert memory() < 16 * MiB
    assert streamed < 32 * MiB  # the server could not push the frame through
    assert [(e.code, e.will_reconnect) for e in events.closed] == [(1009, False)]
    assert "exceeds limit of 1048576 bytes" in events.closed[0].reason
    [limit] = events.limits("max_message_size")
    assert limit.maximum == 1 * MiB and "1009" in str(limit)
    assert client.stats.closed_too_big == 1


# --- one batch over max_batch_size --------------------------------------------------------------


async def test_a_batch_over_max_batch_size_is_refused_before_any_handler_runs(
    hostile: Callable[[Script], Awaitable[str]], memory: Callable[[], int]
) -> None:
    """20,000 calls in one 1.3 MB frame (max_message_size raised to let it in): one -32600
    answers the whole batch, no handler runs, and the connection stays open."""
    answers: asyncio.Queue[Any] = asyncio.Queue()
    batch = "[" + ",".join(call("add", [1, 2], i) for i in range(20_000)) + "]"
    go = asyncio.Event()

    async def script(ws: ServerConnection) -> None:
        await hello(ws)
        await go.wait()
        await ws.send(batch)
        async for text in ws:
            await answers.put(json.loads(text))

    ran = 0

    def add(a: int, b: int) -> int:
        nonlocal ran
        ran += 1
        return a + b

    events = Recorder()
    client = Client(
        await hostile(script),
        handlers={"add": add},
        max_message_size=8 * MiB,
        heartbeat_interval=None,
        **events.callbacks(),
    )
    await client.connect()
    go.set()
    answer = await asyncio.wait_for(answers.get(), WAIT)
    assert ran == 0
    assert answer == {
        "jsonrpc": "2.0",
        "error": {"code": -32600, "message": "Invalid Request", "data": "at most 100 calls per batch"},
        "id": None,
    }
    assert memory() < 32 * MiB  # the 1.3 MB text and its parse, never a task per member
    assert client.state is State.OPEN
    [limit] = events.limits("max_batch_size")
    assert limit.maximum == 100
    assert client.stats.batches_refused == 1
    await client.close()


# --- calls and notifications without end -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["calls", "notifications"])
async def test_a_flood_to_a_slow_handler_pauses_reading_with_a_bounded_number_in_flight(
    hostile: Callable[[Script], Awaitable[str]], memory: Callable[[], int], kind: str
) -> None:
    """Without end, the server calls (or notifies) a handler that never finishes: the client runs
    max_concurrent_handlers (100) of them and stops reading; the server's writes back up. Nothing
    is refused (pausing loses nothing), memory and tasks stay bounded."""
    server_ws: ServerConnection | None = None
    sent = 0
    limit = 20_000  # 200 MB: a client that does not pause reads them all
    go = asyncio.Event()

    async def script(ws: ServerConnection) -> None:
        nonlocal server_ws, sent
        server_ws = ws
        await hello(ws)
        await go.wait()
        while sent < limit:
            await ws.send(call("slow", [PAD], sent) if kind == "calls" else note("slow", [PAD]))
            sent += 1
            await asyncio.sleep(0)

    running = 0
    forever = asyncio.Event()

    async def slow(pad: str) -> None:
        nonlocal running
        running += 1
        await forever.wait()

    events = Recorder()
    client = Client(
        await hostile(script), handlers={"slow": slow}, heartbeat_interval=None, **events.callbacks()
    )
    await client.connect()
    tasks_before = len(asyncio.all_tasks())
    go.set()
    await until(lambda: backed_up(server_ws) or running > 100 or sent >= limit, "the server backs up")
    assert running == 100
    assert backed_up(server_ws) and sent < limit
    assert len(asyncio.all_tasks()) - tasks_before <= 100 + 5
    assert memory() < 64 * MiB
    assert client.state is State.OPEN
    assert client.stats.pauses >= 1
    assert (client.stats.calls_refused_busy, client.stats.notifications_dropped_busy) == (0, 0)
    assert events.errors == []
    forever.set()
    await client.close()


async def test_over_the_cap_while_a_handler_awaits_an_answer_calls_get_32000_and_notes_are_dropped(
    hostile: Callable[[Script], Awaitable[str]],
) -> None:
    """Handlers that await the client's own calls (which this server never answers) hold every
    slot: pausing would hold up those answers for ever, so the client reads on, answers each
    call over the cap -32000 at once, drops each notification over it, counts them, and reports
    the overload once."""
    refusals: asyncio.Queue[Any] = asyncio.Queue()
    flooding = True

    async def reader(ws: ServerConnection) -> None:
        async for text in ws:
            message = json.loads(text)
            if "error" in message:
                await refusals.put(message)

    async def script(ws: ServerConnection) -> None:
        await hello(ws)
        reading = asyncio.ensure_future(reader(ws))
        i = 0
        while flooding:
            await ws.send(call("ask", [], i) if i % 2 == 0 else note("ask", []))
            i += 1
            await asyncio.sleep(0)  # let the reader see the answers
        await reading

    running = 0
    client: Client | None = None

    async def ask() -> Any:
        nonlocal running
        running += 1
        assert client is not None
        return await client.invoke("never", timeout=math.inf)

    events = Recorder()
    client = Client(
        await hostile(script), handlers={"ask": ask}, heartbeat_interval=None, **events.callbacks()
    )
    await client.connect()
    refusal = await asyncio.wait_for(refusals.get(), WAIT)
    await until(lambda: client.stats.notifications_dropped_busy >= 10, "notifications were dropped")
    flooding = False
    assert refusal["error"] == {"code": -32000, "message": "Too many calls in flight"}
    assert isinstance(refusal["id"], int)
    assert running == 100
    assert client.stats.calls_refused_busy >= 1
    [limit] = events.limits("max_concurrent_handlers")
    assert limit.maximum == 100 and "-32000" in str(limit)
    await client.close()


async def test_a_burst_over_the_cap_waits_and_is_delivered_whole_and_in_order(
    hostile: Callable[[Script], Awaitable[str]],
) -> None:
    """1,000 notifications to handlers held at a gate, with max_concurrent_handlers=10: the
    client pauses, and once the gate opens every notification reaches its handler, in order."""

    async def script(ws: ServerConnection) -> None:
        await hello(ws)
        for i in range(1000):
            await ws.send(note("tick", [i]))
        await ws.wait_closed()

    started: list[int] = []
    gate = asyncio.Event()

    async def tick(i: int) -> None:
        started.append(i)
        await gate.wait()

    events = Recorder()
    client = Client(
        await hostile(script),
        handlers={"tick": tick},
        max_concurrent_handlers=10,
        heartbeat_interval=None,
        **events.callbacks(),
    )
    await client.connect()
    await until(lambda: client.stats.pauses >= 1, "the client paused")
    assert len(started) == 10
    gate.set()
    await until(lambda: len(started) == 1000, "every notification was handled")
    assert started == list(range(1000))
    assert client.stats.notifications_dropped_busy == 0 and events.errors == []
    await client.close()


async def test_the_heartbeat_does_not_drop_a_connection_while_the_client_itself_pauses(
    hostile: Callable[[Script], Awaitable[str]],
) -> None:
    """While the reader is paused, the server's answer to rpc.ping cannot be read: that is the
    client's doing, not a dead server. Two pings go out (the second only after the first timed
    out) and the connection stays; once the handlers finish, reading resumes and every
    notification is handled, the answers to later pings arriving behind them."""
    pings = 0
    count = 1000

    pongs: set[asyncio.Future[None]] = set()

    async def reader(ws: ServerConnection) -> None:
        nonlocal pings
        async for text in ws:
            message = json.loads(text)
            if message.get("method") == "rpc.ping":
                pings += 1
                # Sent apart, so that this reader keeps reading while the client does not.
                pong = asyncio.ensure_future(
                    ws.send(json.dumps({"jsonrpc": "2.0", "result": "pong", "id": message["id"]}))
                )
                pongs.add(pong)
                pong.add_done_callback(pongs.discard)

    async def script(ws: ServerConnection) -> None:
        await hello(ws)
        reading = asyncio.ensure_future(reader(ws))
        for _ in range(count):
            await ws.send(note("slow", [PAD]))
            await asyncio.sleep(0)
        await reading

    gate = asyncio.Event()
    handled = 0

    async def slow(pad: str) -> None:
        nonlocal handled
        await gate.wait()
        handled += 1

    events = Recorder()
    client = Client(
        await hostile(script),
        handlers={"slow": slow},
        heartbeat_interval=0.05,
        heartbeat_timeout=0.1,
        **events.callbacks(),
    )
    await client.connect()
    await until(lambda: client.stats.pauses >= 1 and pings >= 2, "two pings went out during a pause")
    assert client.state is State.OPEN and events.closed == []
    gate.set()
    await until(lambda: handled == count and pings >= 3, "every notification handled, a ping after")
    assert client.state is State.OPEN and events.closed == []
    assert client.stats.notifications_dropped_busy == 0
    await client.close()


async def test_binary_frames_and_replayed_duplicates_are_counted(
    hostile: Callable[[Script], Awaitable[str]],
) -> None:
    async def script(ws: ServerConnection) -> None:
        await ws.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "method": "rpc.connected",
                    "params": {"id": "s1", "recovery": {"token": "t", "offset": "1-0", "window": 60}},
                }
            )
        )
        await ws.send(b"\x00binary")
        for _ in range(2):  # the same offset twice: the second is a duplicate
            await ws.send('{"jsonrpc":"2.0","method":"tick","params":[1],"offset":"1-1"}')
        await ws.wait_closed()

    ticks: list[int] = []
    client = Client(await hostile(script), handlers={"tick": ticks.append}, heartbeat_interval=None)
    await client.connect()
    await until(lambda: client.stats.duplicates_dropped == 1, "the duplicate was dropped")
    assert ticks == [1]
    assert client.stats.binary_ignored == 1
    await client.close()
