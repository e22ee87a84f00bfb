"""Streams (``wsmanager.jsonrpc._streams``, and the client's ``wsmanager_client.streams``).

In-process, through ``RpcCommunicator``: an ``@rpc`` async generator's items
arrive as ``rpc.stream.item`` and the call's response ends them; credit paces
the generator exactly; ``rpc.cancel`` and the end of the socket close it (its
``finally`` runs); the limits answer documented errors. The real servers are
in tests/e2e/test_streams_e2e.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from wsmanager import ConfigurationError, RpcError, RpcHandler, route, rpc, websocket_app
from wsmanager.observe import _counters as counters
from wsmanager.observe._counters import Count
from wsmanager.testing import RpcCommunicator
from wsmanager_client.protocol import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST
from wsmanager_client.streams import CANCELLED, DEFAULT_CREDIT, TOO_MANY_STREAMS, Inbound, Outbound

#: Per stream name: items the generator produced, and whether its ``finally`` ran.
PRODUCED: dict[str, int] = {}
CLOSED: dict[str, asyncio.Event] = {}
#: What ``total`` read of its upload, and set when it stopped reading.
READ: list[int] = []
UPLOAD_DONE = asyncio.Event()
RELEASE = asyncio.Event()
#: Set when a generator's ``finally`` started (it then waits for RELEASE).
CLOSING = asyncio.Event()


class StreamHandler(RpcHandler):
    handler_name = "tests.streams"
    max_streams = 2
    max_stream_credit = 50
    rate_limit = None

    @rpc
    async def count(self, n: int, name: str = "count") -> AsyncIterator[int]:
        CLOSED[name] = asyncio.Event()
        PRODUCED[name] = 0
        try:
            for i in range(n):
                PRODUCED[name] += 1
                yield i
        finally:
            CLOSED[name].set()

    @rpc
    async def failing(self, after: int) -> AsyncIterator[int]:
        for i in range(after):
            yield i
        raise RpcError(4100, "ran dry", {"after": after})

    @rpc
    async def broken(self) -> AsyncIterator[Any]:
        yield 1
        raise ValueError("a bug")

    @rpc
    async def unstorable(self) -> AsyncIterator[Any]:
        yield 1
        "\udfff".encode()  # what storing a client's lone surrogate raises

    @rpc
    async def unencodable(self) -> AsyncIterator[Any]:
        yield object()

    @rpc
    async def chunks(self) -> AsyncIterator[bytes]:
        yield b"\x00\xff"
        yield b"end"

    @rpc
    async def echo(self, value: Any) -> Any:
        return value

    @rpc
    async def total(self, numbers: AsyncIterator[int], start: int = 0) -> int:
        READ.clear()
        try:
            async for n in numbers:
                READ.append(n)
                start += n
        finally:
            UPLOAD_DONE.set()
        return start

    @rpc
    async def slow(self) -> AsyncIterator[int]:
        await RELEASE.wait()
        yield 1

    @rpc
    async def unencodable_then_slow_finally(self) -> AsyncIterator[Any]:
        """Ends with -32603 at its first item; its ``finally`` awaits (a cleanup that takes time)."""
        CLOSED["slow finally"] = asyncio.Event()
        try:
            yield object()
        finally:
            CLOSING.set()
            await RELEASE.wait()
            CLOSED["slow finally"].set()

    @rpc
    async def own_cancelled_error(self) -> AsyncIterator[int]:
        """Awaits a future someone else cancelled: the CancelledError is not the stream's."""
        yield 1
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    @rpc
    async def stubborn(self) -> AsyncIterator[int]:
        """Swallows the cancellation of what it awaits and yields on."""
        CLOSED["stubborn"] = asyncio.Event()
        try:
            i = 0
            while True:
                yield i
                i += 1
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.Event().wait()  # never set
        finally:
            CLOSED["stubborn"].set()

    @rpc
    async def awaiting(self, name: str) -> AsyncIterator[int]:
        """Yields once, then awaits (not at a ``yield``) until released."""
        CLOSED[name] = asyncio.Event()
        try:
            yield 1
            await RELEASE.wait()
            yield 2
        finally:
            CLOSED[name].set()

    @rpc
    async def gate(self) -> str:
        await RELEASE.wait()
        return "opened"

    @rpc
    async def held(self, items: AsyncIterator[Any]) -> list[Any]:
        await RELEASE.wait()
        return [item async for item in items]

    @rpc
    async def busy(self, items: AsyncIterator[Any], keep: bool = False) -> str:
        """Awaits something else than its upload (RELEASE); ``keep``: catches a cancellation
        and answers all the same."""
        try:
            await RELEASE.wait()
        except asyncio.CancelledError:
            if not keep:
                raise
            return "kept"
        finally:
            UPLOAD_DONE.set()
        return "released"

    @rpc
    async def resilient(self, items: AsyncIterator[Any]) -> str:
        """Reads its upload until it fails, catches that, and works on (RELEASE)."""
        try:
            with contextlib.suppress(RpcError):
                async for _ in items:
                    pass
            await RELEASE.wait()
        finally:
            UPLOAD_DONE.set()
        return "released"


application = websocket_app(
    [route("ws/streams/", StreamHandler), route("ws/limited/", StreamHandler, rate_limit=(5.0, 5.0))],
    auth=False,
)


@pytest.fixture(autouse=True)
def fresh_events() -> None:
    """Events of this test's event loop (an event is bound to the loop it first waited in)."""
    global RELEASE, UPLOAD_DONE, CLOSING
    RELEASE, UPLOAD_DONE, CLOSING = asyncio.Event(), asyncio.Event(), asyncio.Event()


class Client(RpcCommunicator):
    async def say(self, message: Any) -> None:
        await self.send_to(text_data=json.dumps(message))

    async def start(self, method: str, *params: Any, call_id: Any = 1) -> None:
        await self.say({"jsonrpc": "2.0", "method": method, "params": list(params), "id": call_id})

    async def grant(self, call_id: Any, n: Any) -> None:
        await self.say({"jsonrpc": "2.0", "method": "rpc.stream.credit", "params": {"id": call_id, "n": n}})

    async def cancel(self, call_id: Any) -> None:
        await self.say({"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": call_id}})

    async def frames(self, count: int) -> list[dict[str, Any]]:
        return [await self.receive_json_from(self.timeout) for _ in range(count)]


async def opened(path: str = "/ws/streams/") -> Client:
    client = Client(application, path)
    accepted, detail = await client.connect()
    assert accepted, detail
    return client


def items_of(frames: list[dict[str, Any]], call_id: Any = 1) -> list[Any]:
    assert all(f["method"] == "rpc.stream.item" and f["params"]["id"] == call_id for f in frames), frames
    return [f["params"]["item"] for f in frames]


async def test_items_arrive_in_order_then_the_response_ends_the_stream() -> None:
    client = await opened()
    await client.start("count", 5)
    assert items_of(await client.frames(5)) == [0, 1, 2, 3, 4]
    assert await client.receive_json_from() == {"jsonrpc": "2.0", "result": {"items": 5}, "id": 1}
    await CLOSED["count"].wait()
    await client.disconnect()


async def test_the_generator_is_never_resumed_beyond_the_credit() -> None:
    """16 items by default, then exactly what each grant adds; a round trip shows nothing more ran."""
    client = await opened()
    await client.start("count", 1000, "paced", call_id="s")
    assert items_of(await client.frames(DEFAULT_CREDIT), "s") == list(range(DEFAULT_CREDIT))
    assert await client.call("echo", "ping") == "ping"  # the server had its chance to run ahead
    assert PRODUCED["paced"] == DEFAULT_CREDIT
    await client.grant("s", 3)
    assert items_of(await client.frames(3), "s") == [16, 17, 18]
    assert await client.call("echo", "ping") == "ping"
    assert PRODUCED["paced"] == DEFAULT_CREDIT + 3
    await client.disconnect()
    await CLOSED["paced"].wait()


async def test_credit_past_the_cap_is_cut() -> None:
    client = await opened()
    await client.start("count", 1000, "capped")
    await client.frames(DEFAULT_CREDIT)
    await client.grant(1, 10_000)
    await client.frames(50)  # max_stream_credit
    assert await client.call("echo", 1) == 1
    assert PRODUCED["capped"] == DEFAULT_CREDIT + 50
    await client.disconnect()


@pytest.mark.parametrize("n", [0, -1, 1.5, "3", True, None])
async def test_a_malformed_grant_is_ignored(n: Any) -> None:
    client = await opened()
    await client.start("count", 100, "malformed")
    await client.frames(DEFAULT_CREDIT)
    await client.grant(1, n)
    await client.grant(2, 1)  # no such stream
    assert await client.call("echo", 1) == 1
    assert PRODUCED["malformed"] == DEFAULT_CREDIT
    await client.disconnect()


async def test_cancel_closes_the_generator_and_answers_minus_32021() -> None:
    before = counters.stats().get(Count.STREAMS_CANCELLED, 0)
    client = await opened()
    await client.start("count", 1000, "cancelled")
    await client.frames(DEFAULT_CREDIT)
    await client.cancel(1)
    await CLOSED["cancelled"].wait()
    answer = await client.receive_json_from()
    assert answer["id"] == 1 and answer["error"] == {"code": CANCELLED, "message": "Stream cancelled"}
    assert counters.stats().get(Count.STREAMS_CANCELLED, 0) == before + 1
    await client.cancel(1)  # no longer open: ignored
    assert await client.call("echo", 2) == 2
    await client.disconnect()


async def test_a_cancel_that_comes_while_the_call_waits_in_the_queue_refuses_the_stream() -> None:
    """The stream's call waits behind ``gate`` (max_concurrent_calls 1): cancelled meanwhile, it is
    answered -32021 when its turn comes and its generator never starts."""
    client = await opened()
    await client.start("gate", call_id="g")
    await client.start("count", 10, "queued", call_id="q")
    await client.cancel("q")
    await client.cancel("nobody")  # no such call: not kept
    assert await client.call("rpc.ping") == "pong"  # the cancels were read
    RELEASE.set()
    assert await client.receive_json_from() == {"jsonrpc": "2.0", "result": "opened", "id": "g"}
    answer = await client.receive_json_from()
    assert answer["id"] == "q" and answer["error"]["code"] == CANCELLED
    assert "queued" not in CLOSED
    assert [item async for item in _stream(client, "count", 2, "after", call_id="q")] == [0, 1]
    await client.disconnect()


async def _stream(client: Client, *params: Any, call_id: Any) -> AsyncIterator[Any]:
    await client.start(*params, call_id=call_id)
    while "result" not in (frame := await client.receive_json_from()):
        assert "params" in frame, frame
        yield frame["params"]["item"]


async def test_a_dropped_socket_closes_the_generator() -> None:
    before = counters.stats().get(Count.STREAMS_DROPPED, 0)
    client = await opened()
    await client.start("count", 1000, "dropped")
    await client.frames(DEFAULT_CREDIT)
    await client.disconnect()
    await asyncio.wait_for(CLOSED["dropped"].wait(), 3)
    assert PRODUCED["dropped"] == DEFAULT_CREDIT
    assert counters.stats().get(Count.STREAMS_DROPPED, 0) == before + 1


async def test_streams_run_apart_from_the_call_queue() -> None:
    """A stream waiting for credit never holds up the socket's other calls (max_concurrent_calls 1)."""
    client = await opened()
    await client.start("count", 1000, "apart")
    await client.frames(DEFAULT_CREDIT)
    assert [await client.call("echo", i) for i in range(3)] == [0, 1, 2]
    await client.disconnect()


async def test_too_many_streams_is_minus_32020_and_an_open_id_is_minus_32600() -> None:
    before = counters.stats().get(Count.STREAMS_REFUSED, 0)
    client = await opened()
    await client.start("count", 1000, "a", call_id=1)
    await client.frames(DEFAULT_CREDIT)
    await client.start("count", 1000, "b", call_id=1)
    answer = await client.receive_json_from()
    assert answer["id"] == 1 and answer["error"]["code"] == INVALID_REQUEST
    await client.start("count", 1000, "b", call_id=2)
    await client.frames(DEFAULT_CREDIT)
    await client.start("count", 1000, "c", call_id=3)
    answer = await client.receive_json_from()
    assert answer == {
        "jsonrpc": "2.0",
        "error": {"code": TOO_MANY_STREAMS, "message": "Too many streams", "data": {"max": 2}},
        "id": 3,
    }
    assert "c" not in CLOSED  # the refused generator never started
    assert counters.stats().get(Count.STREAMS_REFUSED, 0) == before + 1
    await client.disconnect()


async def test_a_generator_that_raises_ends_the_stream_with_its_error() -> None:
    client = await opened()
    await client.start("failing", 2)
    assert items_of(await client.frames(2)) == [0, 1]
    answer = await client.receive_json_from()
    assert answer["error"] == {"code": 4100, "message": "ran dry", "data": {"after": 2}}
    await client.start("broken", call_id=2)
    assert items_of(await client.frames(1), 2) == [1]
    assert (await client.receive_json_from())["error"] == {
        "code": INTERNAL_ERROR,
        "message": "Internal error",
    }
    await client.start("unencodable", call_id=3)
    assert (await client.receive_json_from())["error"]["code"] == INTERNAL_ERROR
    await client.disconnect()


async def test_a_stream_is_answered_as_a_call_would_be_for_the_same_exception() -> None:
    """One mapping for calls and streams: an unstorable string is -32602, not -32603."""
    client = await opened()
    await client.start("unstorable")
    assert items_of(await client.frames(1)) == [1]
    assert (await client.receive_json_from())["error"]["code"] == INVALID_PARAMS
    await client.disconnect()


async def test_a_streaming_method_called_as_a_notification_never_runs() -> None:
    client = await opened()
    await client.say({"jsonrpc": "2.0", "method": "count", "params": [3, "silent"]})
    assert await client.call("echo", 1) == 1
    assert "silent" not in CLOSED
    await client.disconnect()


async def test_grants_are_never_rate_limited() -> None:
    """Credit frames naming an open stream cost no token: 60 grants at 5 frames/s
    (past the 50 strikes that close a socket) all count."""
    client = await opened("/ws/limited/")
    await client.start("count", 1000, "granted")
    await client.frames(DEFAULT_CREDIT)
    for _ in range(60):
        await client.grant(1, 1)
    assert items_of(await client.frames(50)) == list(range(16, 66))  # 50: the cap
    await client.disconnect()


@pytest.mark.parametrize("n", [1000, 0, -1, "x", None])
async def test_grants_that_add_nothing_cost_a_token_so_a_flood_of_them_is_closed(n: Any) -> None:
    """The stream waits before its first item. A grant that adds nothing (past max_stream_credit,
    or whose ``n`` is not a positive integer) costs a token like any frame: 60 of them strike
    out (5 frames/s, 50 strikes: 1008)."""
    client = await opened("/ws/limited/")
    await client.start("slow")
    assert await client.call("echo", 1) == 1  # run after the stream's call: the stream is open
    for _ in range(60):
        await client.grant(1, n)
    while True:
        output = await client.receive_output(client.timeout)
        if output["type"] == "websocket.close":
            assert output["code"] == 1008
            break
    await client.disconnect()


async def test_a_cancel_while_the_generator_closes_leaves_its_cleanup_and_answer_whole() -> None:
    """The stream ended with an error and its ``finally`` awaits: a cancel arriving then is
    ignored, the ``finally`` runs to its end, the call is answered and its id is free again."""
    before = counters.stats().get(Count.STREAMS_CANCELLED, 0)
    client = await opened()
    await client.start("unencodable_then_slow_finally", call_id=7)
    await CLOSING.wait()
    await client.cancel(7)
    assert await client.call("echo", 1) == 1  # the cancel was read
    RELEASE.set()
    answer = await client.receive_json_from()
    assert answer["id"] == 7 and answer["error"]["code"] == INTERNAL_ERROR
    await CLOSED["slow finally"].wait()
    assert counters.stats().get(Count.STREAMS_CANCELLED, 0) == before
    assert [item async for item in _stream(client, "count", 2, "reused", call_id=7)] == [0, 1]
    await client.disconnect()


async def test_a_cancelled_error_of_the_generator_itself_is_answered_minus_32603() -> None:
    client = await opened()
    await client.start("own_cancelled_error", call_id=3)
    assert items_of(await client.frames(1), 3) == [1]
    answer = await client.receive_json_from()
    assert answer == {
        "jsonrpc": "2.0",
        "error": {"code": INTERNAL_ERROR, "message": "Internal error"},
        "id": 3,
    }
    assert await client.call("echo", 1) == 1
    await client.disconnect()


async def test_a_generator_that_swallows_the_cancel_sends_nothing_more() -> None:
    """It catches the cancellation and yields again: that item is not sent, the generator is
    closed and the call answered -32021."""
    client = await opened()
    await client.start("stubborn", call_id=5)
    assert items_of(await client.frames(1), 5) == [0]
    await client.cancel(5)
    answer = await client.receive_json_from()
    assert answer["id"] == 5 and answer["error"]["code"] == CANCELLED
    await CLOSED["stubborn"].wait()
    assert await client.call("echo", 1) == 1
    await client.disconnect()


async def test_a_cancel_or_a_drop_while_the_generator_awaits_closes_it() -> None:
    """Not at a ``yield``: the cancellation of what it awaits runs its ``finally``."""
    client = await opened()
    await client.start("awaiting", "awaiting cancelled", call_id=1)
    assert items_of(await client.frames(1)) == [1]
    await client.cancel(1)
    answer = await client.receive_json_from()
    assert answer["id"] == 1 and answer["error"]["code"] == CANCELLED
    assert CLOSED["awaiting cancelled"].is_set()
    await client.start("awaiting", "awaiting dropped", call_id=2)
    assert items_of(await client.frames(1), 2) == [1]
    await client.disconnect()
    await asyncio.wait_for(CLOSED["awaiting dropped"].wait(), 3)


async def test_repeated_cancels_of_an_upload_cost_a_token_and_count_once() -> None:
    """Only the first cancel of a live upload is free and counted; 60 more strike out."""
    before = counters.stats().get(Count.STREAMS_CANCELLED, 0)
    client = await opened("/ws/limited/")
    await client.start("held", call_id=1)
    assert (await client.receive_json_from())["method"] == "rpc.stream.credit"
    for _ in range(61):
        await client.cancel(1)
    while True:
        output = await client.receive_output(client.timeout)
        if output["type"] == "websocket.close":
            assert output["code"] == 1008
            break
    assert counters.stats().get(Count.STREAMS_CANCELLED, 0) == before + 1
    await client.disconnect()


# -- uploads: client to server ---------------------------------------------------------------
def note(method: str, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


async def test_an_upload_is_read_as_credit_allows_and_the_method_answers() -> None:
    client = await opened()
    await client.say({"jsonrpc": "2.0", "method": "total", "params": {"start": 100}, "id": "u"})
    assert await client.receive_json_from() == note("rpc.stream.credit", id="u", n=DEFAULT_CREDIT)
    for n in range(DEFAULT_CREDIT):
        await client.say(note("rpc.stream.item", id="u", item=n))
    for _ in range(2):  # read: granted back half the credit at a time
        assert await client.receive_json_from() == note("rpc.stream.credit", id="u", n=DEFAULT_CREDIT // 2)
    await client.say(note("rpc.stream.end", id="u"))
    answer = await client.receive_json_from()
    assert answer == {"jsonrpc": "2.0", "result": 100 + sum(range(DEFAULT_CREDIT)), "id": "u"}
    await client.disconnect()


async def test_an_item_past_the_credit_fails_the_upload() -> None:
    """``held`` reads nothing until released: the 17th item is one past the credit."""
    before = counters.stats().get(Count.UPLOAD_ITEMS_REFUSED, 0)
    client = await opened()
    await client.start("held", call_id=1)
    assert (await client.receive_json_from())["params"] == {"id": 1, "n": DEFAULT_CREDIT}
    for n in range(DEFAULT_CREDIT + 1):
        await client.say(note("rpc.stream.item", id=1, item=n))
    assert await client.call("rpc.ping") == "pong"  # read in order: the items came first
    assert counters.stats().get(Count.UPLOAD_ITEMS_REFUSED, 0) == before + 1
    RELEASE.set()
    answer = await client.receive_json_from()
    assert answer["id"] == 1 and answer["error"] == {
        "code": INVALID_REQUEST,
        "message": "Invalid Request",
        "data": "an upload item past the credit",
    }
    await client.disconnect()


async def test_an_item_of_the_wrong_type_is_minus_32602() -> None:
    client = await opened()
    await client.start("total", call_id=1)
    await client.receive_json_from()
    await client.say(note("rpc.stream.item", id=1, item="not a number"))
    answer = await client.receive_json_from()
    assert answer["id"] == 1 and answer["error"]["code"] == -32602
    await client.disconnect()


async def test_cancel_and_a_dropped_socket_end_an_upload() -> None:
    client = await opened()
    await client.start("total", call_id=1)
    await client.receive_json_from()
    await client.cancel(1)
    answer = await client.receive_json_from()
    assert answer["id"] == 1 and answer["error"]["code"] == CANCELLED
    assert UPLOAD_DONE.is_set()
    UPLOAD_DONE.clear()  # the second call's own finally, below
    await client.start("total", call_id=2)
    await client.receive_json_from()
    await client.say(note("rpc.stream.item", id=2, item=5))
    await asyncio.wait_for(_until(lambda: READ == [5]), 3)  # it read the item and waits for more
    assert not UPLOAD_DONE.is_set()
    await client.disconnect()
    await asyncio.wait_for(UPLOAD_DONE.wait(), 3)  # the method's finally ran
    assert READ == [5]


async def test_cancel_interrupts_an_upload_method_awaiting_something_else() -> None:
    """The method never reads again: rpc.cancel cancels the await it is in (its finally runs),
    the call is answered -32021 at once, and the socket's next call runs."""
    UPLOAD_DONE.clear()
    client = await opened()
    await client.start("busy", call_id=1)
    await client.receive_json_from()  # the first credit
    await client.cancel(1)
    answer = await client.receive_json_from()
    assert answer["id"] == 1 and answer["error"]["code"] == CANCELLED
    assert UPLOAD_DONE.is_set() and not RELEASE.is_set()
    assert await client.call("echo", 7) == 7
    await client.disconnect()


async def test_cancel_interrupts_an_upload_method_that_works_on_after_its_upload_failed() -> None:
    """An item past the credit failed the upload; the method caught that and awaits something
    else: rpc.cancel still interrupts it (-32021, its finally ran), and is counted once."""
    UPLOAD_DONE.clear()
    before = counters.stats().get(Count.STREAMS_CANCELLED, 0)
    client = await opened()
    await client.start("resilient", call_id=1)
    assert (await client.receive_json_from())["params"] == {"id": 1, "n": DEFAULT_CREDIT}
    for n in range(DEFAULT_CREDIT + 1):  # the last one is past the credit
        await client.say(note("rpc.stream.item", id=1, item=n))
    await client.cancel(1)
    await client.cancel(1)  # a second cancel does nothing more
    while (answer := await client.receive_json_from()).get("id") != 1:
        assert answer["method"] == "rpc.stream.credit", answer  # granted back while it read
    assert answer["error"]["code"] == CANCELLED
    assert UPLOAD_DONE.is_set() and not RELEASE.is_set()
    assert counters.stats().get(Count.STREAMS_CANCELLED, 0) == before + 1
    await client.disconnect()


async def test_an_upload_method_that_catches_the_cancellation_is_answered_its_result() -> None:
    client = await opened()
    await client.say({"jsonrpc": "2.0", "method": "busy", "params": {"keep": True}, "id": 1})
    await client.receive_json_from()
    await client.cancel(1)
    assert await client.receive_json_from() == {"jsonrpc": "2.0", "result": "kept", "id": 1}
    await client.disconnect()


async def _until(condition: Any) -> None:
    """Let the loop run until ``condition()`` holds (the caller bounds the wait)."""
    while not condition():  # noqa: ASYNC110 - a plain list, no event to wait on
        await asyncio.sleep(0)


def test_a_method_that_streams_and_reads_an_upload_is_refused_with_a_clear_reason() -> None:
    with pytest.raises(TypeError, match="streams or reads an upload, not both"):

        class Both(RpcHandler):
            @rpc
            async def both(self, items: AsyncIterator[int]) -> AsyncIterator[int]:
                async for item in items:
                    yield item


# -- the client's end (sans I/O) ---------------------------------------------------------------
async def test_inbound_hands_items_over_in_order_and_grants_half_windows() -> None:
    inbound = Inbound(window=64)
    inbound.put(0, DEFAULT_CREDIT, 128)
    for i in range(1, 40):
        inbound.put(i, 1, 1)  # only the first item's announcement counts
    inbound.end()
    inbound.put("late")
    taken, grants = [], []
    while True:
        more, item, grant = await inbound.next()
        if not more:
            break
        taken.append(item)
        grants.append(grant)
    assert taken == list(range(40))
    # the first item raises the server's 16 (15 once it is consumed) to the window; then 32 back
    # each time the window has room for half of it
    assert grants[0] == 64 - DEFAULT_CREDIT + 1 and grants[32] == 32 and sum(grants) == 49 + 32
    assert sum(1 for g in grants if g) == 2
    assert await inbound.next() == (False, None, 0)


async def _simulate(window: int, credit: int, cap: int, total: int = 2000) -> tuple[int, int]:
    """A server that sends one item per unit of credit and cuts its credit at ``cap``, and an
    ``Inbound`` consuming each item as it comes: (items consumed, most credit ever cut)."""
    inbound = Inbound(window)
    server_credit, produced, consumed, cut = credit, 0, 0, 0
    while consumed < total:
        while server_credit > 0 and produced < total:
            inbound.put(produced, credit, cap) if produced == 0 else inbound.put(produced)
            produced, server_credit = produced + 1, server_credit - 1
        if not inbound._items:
            return consumed, cut  # stalled: nothing on its way and no credit
        _more, _item, grant = await inbound.next()
        consumed += 1
        cut += max(0, server_credit + grant - cap)
        server_credit = min(server_credit + grant, cap)
    return consumed, cut


@pytest.mark.parametrize(
    ("window", "credit", "cap"),
    [
        (64, 16, 128),
        (300, 16, 128),
        (1000, 16, 128),
        (16, 4, 128),
        (16, 1, 128),
        (8, 16, 16),
        (64, 16, 16),
        (1, 1, 1),
    ],
)
async def test_inbound_never_stalls_whatever_the_announced_credit_and_cap(
    window: int, credit: int, cap: int
) -> None:
    """The reviewer's simulation: a window past twice the cap, an initial credit other than 16 or
    above the window all complete, and no grant is ever cut by the server."""
    assert await _simulate(window, credit, cap) == (2000, 0)


async def test_the_first_item_announces_the_streams_credit_and_cap() -> None:
    client = await opened()
    await client.start("count", 3, "announced")
    frames = await client.frames(3)
    assert frames[0]["params"] == {"id": 1, "item": 0, "credit": DEFAULT_CREDIT, "max_credit": 50}
    assert [f["params"] for f in frames[1:]] == [{"id": 1, "item": 1}, {"id": 1, "item": 2}]
    await client.disconnect()


@pytest.mark.parametrize(("credit", "cap"), [(0, 128), (-1, 128), (32, 16), (True, 128), (16, 2.5)])
def test_stream_credit_settings_are_checked_when_the_handler_is_defined(credit: Any, cap: Any) -> None:
    with pytest.raises(ConfigurationError, match="stream_credit"):
        type("Bad", (RpcHandler,), {"stream_credit": credit, "max_stream_credit": cap})


@pytest.mark.parametrize("window", [0, -3, True, 2.0])
def test_inbound_refuses_a_bad_window(window: Any) -> None:
    with pytest.raises(ValueError):
        Inbound(window=window)


async def test_outbound_spends_only_granted_credit_and_stops_at_the_end() -> None:
    outbound = Outbound()
    for n in (0, -1, True, "2", 1.5):
        outbound.grant(n)  # malformed: ignored
    assert outbound.credit == 0
    outbound.grant(2)
    assert [await outbound.spend(), await outbound.spend()] == [True, True]
    waiting = asyncio.ensure_future(outbound.spend())
    await asyncio.sleep(0)  # one turn: it waits for credit (no timing involved)
    assert not waiting.done()
    outbound.end()
    assert await waiting is False
    assert await outbound.spend() is False


async def test_a_stream_and_an_upload_speak_messagepack_on_a_messagepack_socket() -> None:
    """Items, grants, the end and the response travel as binary frames when the socket chose
    MessagePack (docs/protocol.md, sections 14 and 15)."""
    client = RpcCommunicator(application, "/ws/streams/", timeout=3.0, encoding="msgpack")
    accepted, detail = await client.connect()
    assert accepted, detail
    assert client.encoding == "msgpack"
    await client._send_message({"jsonrpc": "2.0", "method": "count", "params": [20, "packed"], "id": 1})
    frames = [await client.receive_output(3.0) for _ in range(DEFAULT_CREDIT)]
    assert all(f.get("bytes") is not None and f.get("text") is None for f in frames), frames
    assert [client._decoded(f)["params"]["item"] for f in frames] == list(range(DEFAULT_CREDIT))
    await client.notify("rpc.stream.credit", id=1, n=5)  # 4 items, and the resume that finds the end
    rest = [await client.next_notification() for _ in range(4)]
    assert [note["params"]["item"] for note in rest] == [16, 17, 18, 19]
    end = client._decoded(await client.receive_output(3.0))
    assert end == {"jsonrpc": "2.0", "result": {"items": 20}, "id": 1}

    await client._send_message({"jsonrpc": "2.0", "method": "total", "params": [], "id": 2})
    grant = await client.next_notification()
    assert grant["method"] == "rpc.stream.credit" and grant["params"]["id"] == 2
    for n in (1, 2, 3):
        await client.notify("rpc.stream.item", id=2, item=n)
    await client.notify("rpc.stream.end", id=2)
    assert client._decoded(await client.receive_output(3.0)) == {"jsonrpc": "2.0", "result": 6, "id": 2}
    await client.disconnect()


async def test_a_closed_socket_never_resumes_the_generator() -> None:
    """The socket closes while the stream waits for its send backlog to drain (the writer's
    ``drained`` then returns), before ``close_all`` reaches the stream: the generator is not
    resumed again, nothing more is sent, and the drop is counted."""
    from wsmanager.jsonrpc._streams import Streams
    from wsmanager_client.protocol import ErrorObject

    resumes = 0
    closed = False
    released = asyncio.Event()
    sent: list[str] = []

    async def counting() -> AsyncIterator[int]:
        nonlocal resumes
        while True:
            resumes += 1
            yield resumes

    async def send(text: str) -> bool:
        if closed:
            return False
        sent.append(text)
        return True

    async def drained() -> None:
        await released.wait()

    def error_of(exc: BaseException, method: str) -> ErrorObject:
        raise AssertionError(f"{method} failed: {exc!r}")

    streams = Streams(
        send,
        drained,
        error_of,
        closed=lambda: closed,
        credit=8,
        max_credit=8,
        max_streams=4,
        max_item_size=None,
    )
    before = counters.stats().get(Count.STREAMS_DROPPED, 0)
    streams.open(1, "count", counting())
    async with asyncio.timeout(5):
        await _until(lambda: len(sent) == 1)  # the first item is out; the stream waits in drained()
        closed = True  # the socket closed: the outbox takes nothing more and drained() ends
        released.set()
        await asyncio.gather(*streams._tasks)
    assert resumes == 1
    assert len(sent) == 1
    assert counters.stats().get(Count.STREAMS_DROPPED, 0) == before + 1
    streams.close_all()  # the handler's on_released comes after: nothing is counted twice
    assert counters.stats().get(Count.STREAMS_DROPPED, 0) == before + 1


async def test_stream_items_of_bytes_travel_as_bin_on_messagepack_and_fail_on_json() -> None:
    """A stream's items are encoded for the socket itself (docs/protocol.md, section 15)."""
    packed = RpcCommunicator(application, "/ws/streams/", timeout=3.0, encoding="msgpack")
    assert (await packed.connect())[0]
    await packed._send_message({"jsonrpc": "2.0", "method": "chunks", "id": "s"})
    items = [(await packed.next_notification())["params"]["item"] for _ in range(2)]
    assert items == [b"\x00\xff", b"end"]
    assert await packed.next_notification() == {"jsonrpc": "2.0", "result": {"items": 2}, "id": "s"}
    await packed.disconnect()

    client = await opened()
    await client.start("chunks")
    answer = await client.receive_json_from()
    assert answer["id"] == 1 and answer["error"]["code"] == -32603, answer
    await client.disconnect()
