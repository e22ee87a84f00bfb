"""``wsmanager.drain``: closing every local socket over a period, and the SIGTERM hook that
drains before handing over to the server's own handler (in this process, with real signals).
Per server, end to end: tests/e2e/test_servers.py."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from wsmanager.node import get_node
from wsmanager.ops import drain

CLOSED: list[tuple[str, int, str]] = []


class FakeSocket:
    """What the drain uses of a socket: ``id`` and ``close``, which leaves the node."""

    def __init__(self, sid: str) -> None:
        self.id = sid
        get_node().sockets[sid] = self  # type: ignore[assignment]

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        CLOSED.append((self.id, int(code or 0), reason or ""))
        get_node().sockets.pop(self.id, None)


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    """The plugin's reset forgets the drain (wsmanager._state); this restores the signal."""
    CLOSED.clear()
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


async def test_drain_closes_every_socket_with_1012_and_the_reason() -> None:
    sockets = [FakeSocket(f"s{i}") for i in range(5)]
    assert await drain.drain(period=0) == 5
    assert [(s.id, 1012, "server restarting") for s in sockets] == CLOSED
    assert get_node().sockets == {}


async def test_drain_spreads_batches_over_the_period(monkeypatch: pytest.MonkeyPatch) -> None:
    """20 sockets over 1 s: 10 batches of 2, with a wait after each batch but the last."""
    events: list[Any] = []

    async def fake_sleep(seconds: float) -> None:
        await asyncio.sleep(0)  # the batch's closes run
        events.append("wait")

    monkeypatch.setattr(drain, "_sleep", fake_sleep)
    original_close = FakeSocket.close

    async def close(self: FakeSocket, code: int | None = None, reason: str | None = None) -> None:
        events.append(self.id)
        await original_close(self, code, reason)

    monkeypatch.setattr(FakeSocket, "close", close)
    for i in range(20):
        FakeSocket(f"s{i:02}")
    assert await drain.drain(period=1.0, code=1001, reason="going away") == 20
    batches = " ".join(map(str, events)).split(" wait ")
    assert [batch.split() for batch in batches] == [[f"s{2 * b:02}", f"s{2 * b + 1:02}"] for b in range(10)]
    assert {(code, reason) for _, code, reason in CLOSED} == {(1001, "going away")}


async def test_sockets_that_arrive_during_the_drain_are_closed_too(monkeypatch: pytest.MonkeyPatch) -> None:
    async def late_arrival(seconds: float) -> None:
        if "late" not in get_node().sockets and not any(sid == "late" for sid, _, _ in CLOSED):
            FakeSocket("late")

    monkeypatch.setattr(drain, "_sleep", late_arrival)
    FakeSocket("a")
    FakeSocket("b")
    assert await drain.drain(period=1.0) == 3
    assert [sid for sid, _, _ in CLOSED] == ["a", "b", "late"]


async def test_a_failing_close_is_logged_and_the_others_go_on(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(FakeSocket):
        async def close(self, code: int | None = None, reason: str | None = None) -> None:
            raise RuntimeError("broken socket")

    Broken("x")
    FakeSocket("y")
    assert await drain.drain(period=0) == 1
    assert [sid for sid, _, _ in CLOSED] == ["y"]
    assert "closing socket x failed" in caplog.text


async def wait_for(condition: Any, what: str) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@override_settings(WSMANAGER={"DRAIN_PERIOD": 0})
async def test_sigterm_drains_then_runs_the_previous_python_handler() -> None:
    """A server's handler set with signal.signal (uvicorn, daphne's Twisted) runs after the drain."""
    seen: list[str] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(f"server saw {len(CLOSED)} closed"))
    FakeSocket("a")
    FakeSocket("b")
    assert drain.install() is True
    assert drain.install() is True  # idempotent: still one hook
    os.kill(os.getpid(), signal.SIGTERM)
    await wait_for(lambda: seen, "the server's handler ran")
    assert seen == ["server saw 2 closed"]
    assert get_node().sockets == {}


@override_settings(WSMANAGER={"DRAIN_PERIOD": 0})
async def test_sigterm_drains_then_runs_the_previous_loop_handler() -> None:
    """A server's handler set with an asyncio loop's add_signal_handler runs after the drain, once."""
    loop = asyncio.get_running_loop()
    seen: list[int] = []
    loop.add_signal_handler(signal.SIGTERM, lambda: seen.append(len(CLOSED)))
    try:
        FakeSocket("a")
        assert drain.install() is True
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_for(lambda: seen, "the server's handler ran")
        # Once: the hand-over runs at the end of the drain's task, so when that task has
        # ended, nothing of the drain can call the handler again.
        await wait_for(lambda: not drain.draining(), "the drain ended")
        assert seen == [1]
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def test_a_second_sigterm_hands_over_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a long drain waits between batches, another SIGTERM stops it and the server's handler runs."""
    monkeypatch.setattr(drain, "_sleep", lambda seconds: asyncio.sleep(3600))
    seen: list[str] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: seen.append("server"))
    for i in range(4):
        FakeSocket(f"s{i}")
    with override_settings(WSMANAGER={"DRAIN_PERIOD": 60}):
        drain.install()
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_for(lambda: CLOSED, "the first batch closed")
        assert drain.draining()
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_for(lambda: seen, "the server's handler ran")
    assert seen == ["server"]
    assert len(CLOSED) == 1  # one batch of four (four sockets over 60 s: four batches) went out


@override_settings(WSMANAGER={"DRAIN_PERIOD": 0})
def test_sigterm_under_uvloop_drains_then_hands_over_as_sigint() -> None:
    """uvloop hides the server's callback (granian's case): the hand-over comes as SIGINT."""
    uvloop = pytest.importorskip("uvloop")

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        seen: list[str] = []
        loop.add_signal_handler(signal.SIGTERM, lambda: seen.append("server's SIGTERM handler"))
        loop.add_signal_handler(signal.SIGINT, lambda: seen.append(f"SIGINT after {len(CLOSED)} closed"))
        try:
            FakeSocket("a")
            assert drain.install() is True
            os.kill(os.getpid(), signal.SIGTERM)
            await wait_for(lambda: seen, "the server heard of it")
            await wait_for(lambda: not drain.draining(), "the drain ended")  # nothing more can come
            return seen
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            loop.remove_signal_handler(signal.SIGINT)

    assert uvloop.run(main()) == ["SIGINT after 1 closed"]
