"""The heartbeat (wsmanager.node._heartbeat) and ``cancel_requested``: background loops end
when cancelled, even if the cancel is lost; removals that failed while the registry was
down are retried; each beat publishes the sockets' activity."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import override_settings

from tests.handlers import RecordingHandler, application
from wsmanager import RegistryUnavailable
from wsmanager import registry as registry_module
from wsmanager.node import Node, get_node
from wsmanager.node import _heartbeat as upkeep_module
from wsmanager.node._link import Link
from wsmanager.observe import _counters as counters
from wsmanager.observe import _hub as observe
from wsmanager.registry._base import Departure
from wsmanager.registry.memory import InMemoryRegistry


class LosesCancellation:
    """Stands in for a call whose first CancelledError never reaches the caller.

    Python 3.11's ``asyncio.wait_for`` (around every redis-py write) does
    that when the cancel arrives as its inner call completes. Later calls
    let cancellation through, so a failing test does not leave a task behind.
    """

    shared = False

    def __init__(self) -> None:
        self.calls = 0
        self.entered = asyncio.Event()

    async def _lose_one_cancel(self) -> None:
        self.calls += 1
        self.entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if self.calls > 1:
                raise

    async def node_alive(self, node_id: str) -> None:
        await self._lose_one_cancel()

    async def take_departures(self, limit: int = 1000) -> list[object]:
        return []

    async def receive(self, channel: str) -> dict[str, str]:
        await self._lose_one_cancel()
        return {"type": "wsmanager.unknown"}


async def cancel_and_wait(task: asyncio.Task[None], culprit: LosesCancellation) -> None:
    await culprit.entered.wait()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5.0)
    assert task in done, "the loop kept running after it was cancelled"
    assert culprit.calls == 1


async def test_heartbeat_loop_ends_when_its_cancellation_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """A heartbeat cancelled inside a call that swallows the CancelledError still ends."""
    culprit = LosesCancellation()
    monkeypatch.setattr(upkeep_module, "get_registry", lambda: culprit)
    node = Node()
    node.id = "test-node"
    # An hour between beats: ending must not wait for the next one.
    await cancel_and_wait(asyncio.ensure_future(node.upkeep.heartbeat_loop(3600)), culprit)
    assert node.upkeep.announcing is None  # nothing more was started after the lost cancel


async def test_read_loop_ends_when_its_cancellation_is_lost() -> None:
    """A channel read cancelled inside a call that swallows the CancelledError still ends."""
    culprit = LosesCancellation()

    async def handle(envelope: dict[str, Any]) -> None:
        pass

    reading = asyncio.ensure_future(Link(culprit).read_forever("test-node", handle))
    await cancel_and_wait(reading, culprit)


# -- removals that failed while the registry was down -----------------------------------------------


class FlakyRegistry(InMemoryRegistry):
    """An in-memory registry whose ``remove`` fails while ``down`` is set."""

    down = False

    async def remove(
        self, handler: str, socket_id: str, node: str | None = None, key: str | None = None
    ) -> Departure | None:
        if self.down:
            raise RegistryUnavailable("registry down (test)")
        return await super().remove(handler, socket_id, node, key)


@override_settings(WSMANAGER={**settings.WSMANAGER, "REGISTRY": {"BACKEND": f"{__name__}.FlakyRegistry"}})
async def test_a_removal_that_failed_is_retried_on_the_next_beat() -> None:
    """A socket that closes while the registry is down stays listed until a beat removes it."""
    registry_module.reset_registry()
    flaky = registry_module.get_registry()
    assert isinstance(flaky, FlakyRegistry)
    comm = WebsocketCommunicator(application, "/ws/record/")
    assert (await comm.connect())[0]
    (sid,) = await RecordingHandler.manager.aids()
    await RecordingHandler.manager.aadd_to_group(sid, "room")
    flaky.down = True
    await comm.disconnect()
    node = get_node()
    assert node.upkeep.orphans == [(RecordingHandler.handler_name, sid)]
    assert sid not in node.sockets
    assert await flaky.get(RecordingHandler.handler_name, sid) is not None  # the stale entry, for now
    with pytest.raises(RegistryUnavailable):  # still down: the beat logs it, the orphan stays
        await node.upkeep._retry_orphans()
    assert node.upkeep.orphans == [(RecordingHandler.handler_name, sid)]
    flaky.down = False
    await node.upkeep._retry_orphans()
    assert node.upkeep.orphans == []
    assert await flaky.get(RecordingHandler.handler_name, sid) is None
    assert await flaky.groups(RecordingHandler.handler_name) == []


# -- the beat --------------------------------------------------------------------------------------


class CountingRegistry:
    """Counts heartbeats and keeps the published counters; nothing to take, retry or reconcile."""

    shared = False

    def __init__(self) -> None:
        self.beats = 0
        self.published: dict[str, int] = {}
        self.activity: dict[str, float] = {}

    async def node_alive(self, node_id: str) -> None:
        self.beats += 1

    async def put_node_stats(self, node: str, stats: dict[str, int]) -> None:
        self.published = stats

    async def put_node_activity(self, node: str, activity: dict[str, float]) -> None:
        self.activity = activity

    async def take_departures(self, limit: int = 1000) -> list[Departure]:
        return []

    async def expire_parked(self, limit: int = 1000) -> int:
        return 0


async def test_the_node_beats_twice_per_heartbeat_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """One ``node_alive`` per half interval: with node_ttl = 1.5 intervals, a dead node is
    swept within two intervals (1.5 until its key expires, 0.5 until a survivor's next beat)."""
    counting = CountingRegistry()
    naps: list[float] = []

    async def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 3:
            raise asyncio.CancelledError

    monkeypatch.setattr(upkeep_module, "get_registry", lambda: counting)
    monkeypatch.setattr(upkeep_module, "_sleep", nap)
    node = Node()
    node.id = "test-node"
    counters.bump(counters.Count.DELIVERED, 7)
    with pytest.raises(asyncio.CancelledError):
        await node.upkeep.heartbeat_loop(4.0)
    assert naps == [2.0, 2.0, 2.0]
    assert counting.beats == 3
    assert counting.published == {"delivered": 7, "sockets": 0}
    assert node.upkeep.announcing is not None
    await node.upkeep.announcing  # nothing to announce: ends at once


async def test_the_intake_and_the_writer_report_to_the_sockets_activity() -> None:
    """One ``Activity`` per socket, shared by its intake (frames in) and its writer (frames out);
    the heartbeat reads ``sock.activity.last``, a typed attribute of the socket."""
    comm = WebsocketCommunicator(application, "/ws/record/")
    assert (await comm.connect())[0]
    (sid,) = await RecordingHandler.manager.aids()
    sock = get_node().sockets[sid]
    assert sock.activity is sock.intake.activity is sock.writer.activity  # type: ignore[attr-defined]
    sock.activity.last = 0.0
    await comm.send_to(text_data="ping")  # in: the intake sets it, then the echo goes out
    assert await comm.receive_from() == "ping"
    after_echo = sock.activity.last
    assert after_echo > 0.0
    sock.activity.last = 0.0
    assert sock.writer.push({"type": "websocket.send", "text": "out only"})
    assert await comm.receive_from() == "out only"  # out: the writer sets it
    assert sock.activity.last > 0.0
    await comm.disconnect()


async def test_a_beat_publishes_the_last_activity_of_the_local_sockets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The handler's intake and writer keep the time of the last frame in or out in memory; the
    beat publishes it per socket with ``put_node_activity`` (nothing is written per frame)."""
    counting = CountingRegistry()
    comm = WebsocketCommunicator(application, "/ws/record/")
    assert (await comm.connect())[0]
    (sid,) = await RecordingHandler.manager.aids()
    node = get_node()
    before = time.time()
    await comm.send_to(text_data="ping")
    assert await comm.receive_from() == "ping"
    received_and_echoed = node.upkeep.activity()[sid]
    assert received_and_echoed >= before

    async def one_beat(seconds: float) -> None:
        raise asyncio.CancelledError

    monkeypatch.setattr(upkeep_module, "get_registry", lambda: counting)
    monkeypatch.setattr(upkeep_module, "_sleep", one_beat)
    with pytest.raises(asyncio.CancelledError):
        await node.upkeep.heartbeat_loop(4.0)
    assert counting.activity == {sid: received_and_echoed}
    if node.upkeep.announcing is not None:
        await node.upkeep.announcing
    await comm.disconnect()
    assert node.upkeep.activity() == {}


async def test_each_beat_is_an_observer_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """Observers hear the heartbeat, even while the registry is down (the metrics' drop
    counters are synced on it in multi-process mode)."""

    class Beats(observe.Observer):
        heard = 0

        def heartbeat(self) -> None:
            self.heard += 1

    class Down(CountingRegistry):
        async def node_alive(self, node_id: str) -> None:
            raise RegistryUnavailable("down (test)")

    naps: list[float] = []

    async def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            raise asyncio.CancelledError

    beats = Beats()
    monkeypatch.setattr(upkeep_module, "get_registry", Down)
    monkeypatch.setattr(upkeep_module, "_sleep", nap)
    observe.add(beats)
    try:
        node = Node()
        node.id = "test-node"
        with pytest.raises(asyncio.CancelledError):
            await node.upkeep.heartbeat_loop(4.0)
    finally:
        observe.remove(beats)
    assert beats.heard == 2
