"""wsmanager_client.recovery without a server: offsets, the seen-set and its bound, the resume
decision per close code, window and own close, the resume URL, and what rpc.connected says.

The client against a scripted server that drops and resumes is at the end of this file; the
client against the demo on daphne is in tests/e2e/test_python_client_recovery_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from wsmanager_client import (
    Client,
    Closed,
    Connected,
    Options,
    Reconnected,
    Recovered,
    RecoveryFailed,
    State,
    connect,
    is_final_close_code,
)
from wsmanager_client.policy import RESUMED_ELSEWHERE
from wsmanager_client.recovery import (
    RESUMABLE_CODES,
    Outcome,
    Recovery,
    SeenOffsets,
    format_offset,
    frame_offsets,
    parse_offer,
    parse_offset,
    resume_url,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hello(
    sid: str = "s1", token: str = "t1", offset: str = "100-0", window: float = 60.0, **extra: Any
) -> Any:
    return {"id": sid, "recovery": {"token": token, "offset": offset, "window": window}, **extra}


def started(clock: Clock | None = None, **params: Any) -> Recovery:
    recovery = Recovery(clock=clock or Clock())
    assert recovery.hello(hello(**params)) is None
    return recovery


# --- offsets -------------------------------------------------------------------------


def test_offsets_parse_as_pairs_of_integers_and_compare_as_such() -> None:
    assert parse_offset("1733100000000-3") == (1733100000000, 3)
    assert parse_offset("9-10") > parse_offset("9-9")  # type: ignore[operator]
    assert parse_offset("10-0") > parse_offset("9-99")  # type: ignore[operator]
    assert format_offset((1733100000000, 3)) == "1733100000000-3"


@pytest.mark.parametrize(
    "bad", [None, 5, "", "5", "-1-0", "1-", "a-b", "1-2-3", " 1-2", "1" * 21 + "-0", "\u0661-\u0662"]
)
def test_malformed_offsets_are_none(bad: Any) -> None:
    assert parse_offset(bad) is None


def compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


@pytest.mark.parametrize(
    ("text", "offsets"),
    [
        ('{"jsonrpc":"2.0","method":"m","params":{},"offset":"1733100000000-12"}', ["1733100000000-12"]),
        ('{"jsonrpc": "2.0", "offset": "1-0", "method": "m"}', ["1-0"]),  # not a wsmanager server's layout
        ('[{"method":"a","offset":"1-0"},{"method":"b"},5]', ["1-0", None, None]),
        ('{"method":"m","params":{"offset":"1-0"}}', [None]),  # a param, not the member
        ('{"method":"m","params":{"x":{"y":1,"offset":"1-0"}}}', [None]),
        (compact({"method": "m", "params": {"t": ',"offset":"1-0"}'}}), []),  # inside a string
        (compact({"method": "m", "params": [',"offset":"1-0"}']}), []),
        ('{"jsonrpc":"2.0","method":"m","params":[]}', []),
        ("not json", []),
        ('not json "offset"', []),
    ],
)
def test_frame_offsets_reads_each_top_level_member(text: str, offsets: list[Any]) -> None:
    assert frame_offsets(text) == offsets


# --- the seen-set -------------------------------------------------------------------------


def test_the_seen_set_refuses_a_second_add_and_keeps_only_the_latest() -> None:
    seen = SeenOffsets(limit=3)
    assert [seen.add((n, 0)) for n in (1, 2, 1, 3)] == [True, True, False, True]
    assert seen.add((4, 0))  # (1, 0) is forgotten
    assert list(seen) == [(2, 0), (3, 0), (4, 0)] and len(seen) == 3
    assert (1, 0) not in seen and (4, 0) in seen
    assert seen.add((1, 0))  # forgotten, so new again
    with pytest.raises(ValueError):
        SeenOffsets(limit=0)


def test_the_default_bound_holds_ten_thousand() -> None:
    recovery = started()
    for n in range(10_050):
        assert recovery.accept(f"200-{n}")
    assert len(recovery.seen) == 10_000
    assert recovery.accept("200-10")  # forgotten: delivered again
    assert not recovery.accept("200-10049")


def test_duplicates_are_refused_and_highest_tracks_the_greatest() -> None:
    recovery = started()
    assert recovery.highest == (100, 0)
    assert recovery.accept("101-0") and recovery.accept("103-0") and recovery.accept("102-5")
    assert not recovery.accept("101-0")
    assert recovery.highest == (103, 0)
    assert recovery.accept(None) and recovery.accept(None) and recovery.accept("junk")  # not tracked
    assert len(recovery.seen) == 3


# --- the offer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"id": "s"},
        None,
        {"recovery": "x"},
        hello(token=""),
        hello(offset="nope"),
        hello(window=0),
        hello(window=-1),
        {"recovery": {"token": "t", "offset": "1-0", "window": True}},
        {"recovery": {"token": "t", "offset": "1-0", "window": float("inf")}},
    ],
)
def test_no_offer_or_a_malformed_one_means_no_recovery(params: Any) -> None:
    assert parse_offer(params) is None
    recovery = Recovery(clock=Clock())
    recovery.hello(params)
    assert not recovery.active
    recovery.lost(1006)
    assert recovery.url_for("ws://h/p") == "ws://h/p"


def test_the_recover_option_is_a_bool_and_on_by_default() -> None:
    assert Options().recover is True and Client("ws://h/", recover=False).options.recover is False
    with pytest.raises(TypeError, match="recover"):
        Options(recover=1)  # type: ignore[arg-type]


def test_an_offer_is_taken_and_a_client_that_opted_out_ignores_it() -> None:
    offer = parse_offer(hello(window=30))
    assert offer is not None and (offer.token, offer.offset, offer.window) == ("t1", (100, 0), 30.0)
    recovery = Recovery(enabled=False)
    recovery.hello(hello())
    assert not recovery.active
    recovery.lost(1006)
    assert recovery.url_for("ws://h/p") == "ws://h/p"


# --- the decision -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(RESUMABLE_CODES))
def test_an_abrupt_drop_within_the_window_resumes_from_the_highest_offset(code: int) -> None:
    clock = Clock()
    recovery = started(clock)
    recovery.accept("150-2")
    recovery.lost(code)
    clock.now += 59.9
    assert recovery.url_for("ws://h/ws/chat/r/?name=ann") == (
        "ws://h/ws/chat/r/?name=ann&wsm_resume=t1&wsm_offset=150-2"
    )


@pytest.mark.parametrize("code", [1000, 1002, 1003, 1008, 1009, 1013, 4000, 4403, 4409, 4500])
def test_other_codes_never_resume(code: int) -> None:
    recovery = started()
    recovery.lost(code)
    assert recovery.url_for("ws://h/p") == "ws://h/p"
    assert recovery.token is None


def test_resumed_elsewhere_is_final_and_forgets_the_token() -> None:
    assert RESUMED_ELSEWHERE == 4409 and is_final_close_code(RESUMED_ELSEWHERE)
    assert RESUMED_ELSEWHERE not in RESUMABLE_CODES


def test_the_window_is_counted_from_the_drop_and_is_strict() -> None:
    clock = Clock()
    recovery = started(clock, window=10)
    recovery.lost(1006)
    clock.now += 5
    assert "wsm_resume" in recovery.url_for("ws://h/")  # an attempt that failed to open ...
    recovery.lost(1006)  # ... changes nothing: it never got rpc.connected
    clock.now += 5
    assert recovery.url_for("ws://h/") == "ws://h/"  # exactly the window: too late
    assert recovery.url_for("ws://h/") == "ws://h/"  # and the token is forgotten
    assert recovery.hello(hello(sid="s2", token="t2")) == Outcome(False, reason="expired")


def test_the_clients_own_close_never_resumes() -> None:
    recovery = started()
    recovery.reset()
    recovery.lost(1006)
    assert recovery.url_for("ws://h/") == "ws://h/"
    assert recovery.hello(hello()) is None  # nothing to report: a new session


def test_a_second_drop_after_a_fresh_start_uses_the_new_token() -> None:
    recovery = started()
    recovery.lost(1012)
    recovery.url_for("ws://h/")
    assert recovery.hello(hello(sid="s1", token="t2", offset="300-0", recovered=True, replayed=0)) == Outcome(
        True, 0
    )
    recovery.lost(1001)
    assert recovery.url_for("ws://h/") == "ws://h/?wsm_resume=t2&wsm_offset=300-0"


# --- the URL -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://h/p", "ws://h/p?wsm_resume=tok&wsm_offset=5-1"),
        ("ws://h/p/?", "ws://h/p/?wsm_resume=tok&wsm_offset=5-1"),
        ("wss://h:8443/p?a=1&b=x%20y&c", "wss://h:8443/p?a=1&b=x%20y&c&wsm_resume=tok&wsm_offset=5-1"),
        ("ws://h/p?wsm_resume=old&a=1&wsm_offset=1-0", "ws://h/p?a=1&wsm_resume=tok&wsm_offset=5-1"),
        ("ws://h/p?wsm%5Fresume=old&a=1", "ws://h/p?a=1&wsm_resume=tok&wsm_offset=5-1"),
    ],
)
def test_the_resume_params_are_added_and_the_apps_own_kept(url: str, expected: str) -> None:
    assert resume_url(url, "tok", (5, 1)) == expected


def test_the_token_is_percent_encoded() -> None:
    assert resume_url("ws://h/", "a+b/c=d&e", (1, 0)) == "ws://h/?wsm_resume=a%2Bb%2Fc%3Dd%26e&wsm_offset=1-0"


# --- what rpc.connected says --------------------------------------------------------------------------


def resumed(**params: Any) -> tuple[Recovery, Outcome | None]:
    recovery = started()
    recovery.accept("101-0")
    recovery.accept("102-0")
    recovery.lost(1006)
    recovery.url_for("ws://h/")
    return recovery, recovery.hello(params)


def test_a_recovered_session_keeps_its_offsets_and_takes_the_new_token() -> None:
    recovery, outcome = resumed(**hello(token="t2", offset="101-0", recovered=True, replayed=3))
    assert outcome == Outcome(True, 3)
    assert not recovery.accept("102-0")  # seen before the drop: a replayed duplicate
    assert recovery.accept("103-0")
    assert recovery.highest == (103, 0) and recovery.token == "t2"


def test_a_recovered_sessions_highest_is_the_greater_of_the_two() -> None:
    recovery, _ = resumed(**hello(token="t2", offset="500-0", recovered=True, replayed=0))
    assert recovery.highest == (500, 0)


@pytest.mark.parametrize("reason", ["expired", "unknown", "overflow", "lost", "refused"])
def test_a_failed_resume_starts_over_from_the_new_offset(reason: str) -> None:
    recovery, outcome = resumed(
        **hello(sid="s2", token="t2", offset="400-0", recovered=False, recovery_failed=reason)
    )
    assert outcome == Outcome(False, reason=reason)
    assert recovery.highest == (400, 0) and len(recovery.seen) == 0
    assert recovery.accept("102-0")  # a fresh socket: nothing is a duplicate


def test_a_server_that_ignores_the_resume_is_a_failure_too() -> None:
    assert resumed(**hello(sid="s2"))[1] == Outcome(False, reason="unsupported")
    assert resumed(id="s2")[1] == Outcome(False, reason="unsupported")
    assert resumed(**hello(sid="s2", recovered=False))[1] == Outcome(False, reason="refused")


def test_a_bad_replayed_count_is_zero() -> None:
    assert resumed(**hello(recovered=True, replayed="3"))[1] == Outcome(True, 0)
    assert resumed(**hello(recovered=True, replayed=-2))[1] == Outcome(True, 0)


def test_recovered_true_without_asking_is_a_plain_start() -> None:
    recovery = Recovery()
    assert recovery.hello(hello(recovered=True, replayed=3)) is None


# --- the client against a scripted server that drops the connection without a close frame ----------------

Script = Callable[[ServerConnection, int], Awaitable[None]]


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Script], Awaitable[tuple[str, list[str]]]]]:
    """A websockets server on loopback running ``script(ws, n)`` for its n-th connection (from 1).

    Yields a function starting one, which returns its URL and the list of request paths
    (with their query strings) it was asked for.
    """
    servers: list[Any] = []

    async def start(script: Script) -> tuple[str, list[str]]:
        paths: list[str] = []

        async def handler(ws: ServerConnection) -> None:
            paths.append(ws.request.path if ws.request is not None else "")
            await script(ws, len(paths))

        server = await serve(handler, "127.0.0.1", 0)
        servers.append(server)
        port = next(iter(server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/ws/chat/lobby/?name=ann", paths

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def frame(method: str, params: Any, **extra: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params, **extra})


def message(n: int, offset: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "message", "params": {"n": n}, "offset": offset}


async def drop(ws: ServerConnection) -> None:
    """End the connection without a close frame (the client sees 1006)."""
    assert ws.transport is not None
    ws.transport.abort()
    await asyncio.sleep(0)


class Log:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self.changed = asyncio.Event()

    def add(self, item: Any) -> None:
        self.items.append(item)
        self.changed.set()

    async def until(self, check: Callable[[list[Any]], bool]) -> None:
        async with asyncio.timeout(5):
            while not check(self.items):
                self.changed.clear()
                await self.changed.wait()


FAST = {"reconnect_delay": 0.01, "reconnect_max_delay": 0.02, "heartbeat_interval": None}


async def test_an_abrupt_drop_resumes_drops_the_replayed_duplicates_then_a_failed_resume_is_told(
    scripted: Any,
) -> None:
    """Drop, resume (replay with duplicates, one batch), drop, failed resume, then 4409 ends it."""

    async def script(ws: ServerConnection, n: int) -> None:
        if n == 1:
            await ws.send(frame("rpc.connected", hello("s1", "t1", "100-0")))
            await ws.send(json.dumps(message(1, "101-0")))
            await ws.send(json.dumps(message(2, "102-0")))
            await ws.recv()  # the client's "sync": both were handled
            await drop(ws)
        elif n == 2:
            params = hello("s1", "t2", "101-0", recovered=True, replayed=3)
            await ws.send(frame("rpc.connected", params))
            await ws.send(json.dumps(message(2, "102-0")))  # the safety margin: already had it
            await ws.send(json.dumps(message(3, "103-0")))
            await ws.send(
                json.dumps({"jsonrpc": "2.0", "method": "message", "params": {"n": 4}})
            )  # no offset
            # Last: a batch is handled a loop step later than a single frame that follows it.
            await ws.send(json.dumps([message(2, "102-0"), message(5, "104-0"), message(6, "105-0")]))
            await ws.recv()
            await drop(ws)
        elif n == 3:
            params = hello("s2", "t3", "900-0", recovered=False, recovery_failed="overflow")
            await ws.send(frame("rpc.connected", params))
            await ws.send(json.dumps(message(7, "101-0")))  # a fresh socket: nothing is a duplicate
            await ws.recv()
            await ws.close(4409, "resumed elsewhere")

    url, paths = await scripted(script)
    log = Log()
    client = Client(
        url,
        handlers={"message": lambda n: log.add(n)},
        on_connected=log.add,
        on_reconnected=log.add,
        on_recovered=log.add,
        on_recovery_failed=log.add,
        on_closed=log.add,
        **FAST,
    )
    await client.connect()

    def numbers() -> list[int]:
        return [item for item in log.items if isinstance(item, int)]

    await log.until(lambda _: numbers() == [1, 2])
    await client.notify("sync")
    await log.until(lambda _: numbers() == [1, 2, 3, 4, 5, 6])
    assert client.id == "s1"
    await client.notify("sync")
    await log.until(lambda _: numbers()[-1:] == [7])
    await client.notify("sync")
    await log.until(lambda items: any(isinstance(e, Closed) and not e.will_reconnect for e in items))

    assert numbers() == [1, 2, 3, 4, 5, 6, 7]
    assert paths == [
        "/ws/chat/lobby/?name=ann",
        "/ws/chat/lobby/?name=ann&wsm_resume=t1&wsm_offset=102-0",
        "/ws/chat/lobby/?name=ann&wsm_resume=t2&wsm_offset=105-0",
    ]
    events = [e for e in log.items if not isinstance(e, int)]
    assert events == [
        Connected("s1", False),
        Closed(1006, "", False, True),
        Connected("s1", True),
        Reconnected("s1", "s1"),
        Recovered("s1", 3),
        Closed(1006, "", False, True),
        Connected("s2", True),
        Reconnected("s2", "s1"),
        RecoveryFailed("overflow", "s1", "s2"),
        Closed(4409, "resumed elsewhere", True, False),
    ]
    assert client.state is State.CLOSED
    await client.close()


async def test_no_resume_after_the_window_after_a_close_frame_or_when_opted_out(scripted: Any) -> None:
    """Window 0.05 s, 0.2 s of backoff: a fresh socket, told "expired"; after close(); recover=False."""
    sids = iter(f"s{n}" for n in range(1, 100))

    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(frame("rpc.connected", hello(next(sids), f"t{n}", "100-0", window=0.05)))
        if n == 1:
            await drop(ws)
        else:
            await ws.wait_closed()

    url, paths = await scripted(script)
    failed: list[RecoveryFailed] = []
    reconnected = asyncio.Event()
    client = Client(
        url,
        on_recovery_failed=failed.append,
        on_reconnected=lambda _: reconnected.set(),
        reconnect_delay=0.2,
        reconnect_jitter=0,
        heartbeat_interval=None,
    )
    await client.connect()
    await asyncio.wait_for(reconnected.wait(), 5)
    assert paths[1] == "/ws/chat/lobby/?name=ann"
    assert failed == [RecoveryFailed("expired", "s1", "s2")]
    await client.close()
    await client.connect()  # a new session after the client's own close: no resume
    assert paths[2] == "/ws/chat/lobby/?name=ann"
    await client.close()

    url, paths = await scripted(script)
    reconnected.clear()
    client = Client(url, recover=False, on_reconnected=lambda _: reconnected.set(), **FAST)
    await client.connect()
    await asyncio.wait_for(reconnected.wait(), 5)
    assert paths == ["/ws/chat/lobby/?name=ann"] * 2
    await client.close()


async def test_a_client_without_recovery_on_the_server_delivers_every_notification(scripted: Any) -> None:
    """No offer in rpc.connected: offsets (if any) are not tracked, duplicates are delivered."""

    async def script(ws: ServerConnection, n: int) -> None:
        await ws.send(frame("rpc.connected", {"id": "s1"}))
        for _ in range(2):
            await ws.send(json.dumps(message(1, "101-0")))
        await ws.wait_closed()

    url, _ = await scripted(script)
    log = Log()
    async with connect(url, handlers={"message": lambda n: log.add(n)}, **FAST):
        await log.until(lambda items: items == [1, 1])
