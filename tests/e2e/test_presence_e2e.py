"""Presence across real server processes on Redis (each server in turn): ``joined`` /
``left`` once, whoever announces.

The demo has no login, so every socket here is its own member (per-user
presence is covered in-process by tests/test_presence.py, and per-user
calls across processes by tests/e2e/test_users_e2e.py). What this module
proves is the cluster part: one announcement per transition whichever
process holds the socket, and ``left`` for the sockets of a process that was
SIGKILLed or stopped, announced by exactly one survivor.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests import redis_support
from tests.e2e.client import LOSES_LEFT_AT_SHUTDOWN, Peer, chat_url, cluster_env, running
from tests.servers import ServerProcess, server_process

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

redis_url = redis_support.redis_url

HEARTBEAT = 0.5


@pytest.fixture(scope="module")
def cluster(redis_url: str, server_kind: str) -> Iterator[list[ServerProcess]]:
    """Two processes of each server in turn on one Redis."""
    env = cluster_env(redis_url, WSMANAGER_HEARTBEAT=str(HEARTBEAT))
    with running([server_process(server_kind, env=env) for _ in range(2)]) as servers:
        yield servers


ws = chat_url


async def drain(peer: Peer, quiet: float = 0.5) -> list[dict[str, Any]]:
    """Every message the peer has received or receives until ``quiet`` seconds pass without one."""
    got = list(peer.inbox)
    peer.inbox.clear()
    while True:
        try:
            got.append(await peer.recv_json(quiet))
        except TimeoutError:
            return got


def presence_notes(messages: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """How many times each (joined/left, id) arrived, alone or in a burst's ``presence``."""
    notes: Counter[tuple[str, str]] = Counter()
    for m in messages:
        if m.get("method") in ("joined", "left"):
            notes[(m["method"], m["params"]["id"])] += 1
        elif m.get("method") == "presence":
            notes.update(("joined", entry["id"]) for entry in m["params"]["joined"])
            notes.update(("left", member) for member in m["params"]["left"])
    return notes


def balanced(notes: Counter[tuple[str, str]], ids: list[str]) -> bool:
    """Each member was announced joining and leaving at most once, and as often as each other
    (a member that came and went within one presence interval is announced neither way)."""
    return all(notes[("joined", i)] == notes[("left", i)] <= 1 for i in ids)


async def wait_for_lefts(peer: Peer, ids: set[str], deadline: float) -> list[dict[str, Any]]:
    """Messages received until ``left`` arrived for every id (fails after ``deadline`` seconds)."""
    got: list[dict[str, Any]] = []
    started = time.monotonic()
    while not ids <= {m["params"]["id"] for m in got if m.get("method") == "left"}:
        remaining = deadline - (time.monotonic() - started)
        assert remaining > 0, f"no left for {ids - {m['params']['id'] for m in got}} in {deadline}s"
        got.append(await peer.recv_json(remaining))
    return got


async def test_joined_and_left_once_per_socket_across_processes(cluster: list[ServerProcess]) -> None:
    """Each arrival and departure on either process is announced once to every other member."""
    a = await Peer.open(ws(cluster[0], "p1"))
    b = await Peer.open(ws(cluster[1], "p1"))
    c = await Peer.open(ws(cluster[0], "p1"))
    who = await b.call("who")
    assert [m["id"] for m in who] == [a.id, b.id, c.id]  # earliest first
    await b.close()
    await c.close()
    notes = presence_notes(await drain(a))
    assert balanced(notes, [b.id, c.id])
    assert set(notes) <= {(event, i) for event in ("joined", "left") for i in (b.id, c.id)}
    assert await a.call("who") == [{"id": a.id, "name": None}]
    await a.close()


async def test_sigkilled_process_sockets_leave_once_via_one_survivor(
    cluster: list[ServerProcess], server_kind: str
) -> None:
    """SIGKILL: members on both survivors (the module's two processes) hear ``left`` once per
    dead socket of a third process, within a few heartbeats."""
    one, two = cluster
    doomed = server_process(server_kind, env=one.env).start()
    try:
        watchers = [await Peer.open(ws(one, "p2")), await Peer.open(ws(two, "p2"))]
        dead = [await Peer.open(ws(doomed, "p2")) for _ in range(3)]
        for watcher in watchers:
            await drain(watcher, 0.3)
        doomed.kill()
        # node_ttl is two heartbeats; a survivor reaps then announces on its next heartbeat.
        got = await asyncio.gather(
            *(wait_for_lefts(w, {p.id for p in dead}, 10 * HEARTBEAT + 5) for w in watchers)
        )
        for watcher, messages in zip(watchers, got, strict=True):
            notes = presence_notes(messages + await drain(watcher, 3 * HEARTBEAT))
            assert notes == Counter({("left", p.id): 1 for p in dead})
        assert {m["id"] for m in await watchers[0].call("who")} == {w.id for w in watchers}
        for watcher in watchers:
            await watcher.close()
    finally:
        doomed.kill()


async def test_stopped_process_sockets_leave_once(
    cluster: list[ServerProcess], server_kind: str, request: pytest.FixtureRequest
) -> None:
    """SIGTERM: the survivor's member (on one of the module's processes) hears ``left`` once for
    each socket of a third process that stops."""
    if server_kind in LOSES_LEFT_AT_SHUTDOWN:
        request.applymarker(pytest.mark.xfail(reason=LOSES_LEFT_AT_SHUTDOWN[server_kind], strict=False))
    survivor = cluster[0]
    with server_process(server_kind, env=survivor.env) as leaving:
        watcher = await Peer.open(ws(survivor, "p3"))
        peers = [await Peer.open(ws(leaving, "p3")) for _ in range(3)]
        await drain(watcher, 0.3)
        await asyncio.to_thread(leaving.stop)  # the clients answer the close meanwhile
        messages = await wait_for_lefts(watcher, {p.id for p in peers}, 10 * HEARTBEAT + 5)
        notes = presence_notes(messages + await drain(watcher, 3 * HEARTBEAT))
        assert notes == Counter({("left", p.id): 1 for p in peers})
        for peer in peers:
            await peer.ws.close()
        await watcher.close()
