"""A close means what it says, on every server and registry (tests/e2e/close_app.py).

Two ways a socket closed on purpose used to be kept as if it had dropped
(parked for the recovery window: still a member, its token still good):

* **A clean close racing a server write.** The client's close frame has
  reached the server, which has not yet told the application; a broadcast
  written meanwhile fails (daphne: "Attempt to send on a closed protocol";
  uvicorn: ``ClientDisconnected``), and the writer closed the socket with
  1011, a park code. Here many members of one room close with 1000 at once
  while the server pumps notifications into the room as fast as it can.
* **hypercorn reports every client-initiated close as 1006**
  (pgjones/hypercorn#127), the code of a lost connection. A client that
  says ``rpc.close`` before its close frame is released at once whatever
  the server reports (docs/protocol.md, section 5).

Every test asserts outcomes, never timings: nobody who closed on purpose is
still in the room or can resume with its token; a wait is for a condition,
bounded well under the recovery window so that a parked ghost shows as a
failure instead of a slow pass.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import websockets

from tests import redis_support
from tests.e2e.client import TIMEOUT, Peer, chat_url, cluster_env, room_ids
from tests.e2e.close_app import WINDOW
from tests.servers import (
    ServerProcess,
    every_implementation,  # noqa: F401  (server_kind: also uvicorn's other implementations)
    server_process,
)

pytestmark = pytest.mark.e2e
redis_url = redis_support.redis_url

#: How long a released socket may take to leave the registry: a bound for the
#: wait, a third of the recovery window, so that a parked socket fails the test.
RELEASED_WITHIN = WINDOW / 3
#: Members of the room in the race tests, and how many close at the same time:
#: each lane closes its members one after the other, so that the closes spread
#: over many turns of the server's event loop while the pump writes.
MEMBERS = 100
LANES = 10
#: Servers whose ASGI ``send`` raises on a connection whose close handshake has
#: begun (the others drop such a write silently): there the race shows in the counters.
#: The pump's tasks, and the pause each makes between two broadcasts: writes go out all the
#: time the members close (each member gets one about every 2.5 ms), at a rate that the test's
#: process reads on a loaded machine. Unpaced (8 tasks as fast as the loop went), the test
#: process fell seconds behind there, a close took up to 49 s and keepalives expired.
PUMPS = 2
PAUSE = 0.005
WRITES_FAIL_AFTER_CLOSE = frozenset({"daphne", "uvicorn", "uvicorn-sansio", "uvicorn-wsproto"})
BYE = '{"jsonrpc":"2.0","method":"rpc.close"}'


@pytest.fixture(scope="module", params=["memory", "redis"])
def registry(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture(scope="module")
def server(server_kind: str, registry: str, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The close app (and the demo, recovery on) on ``server_kind``, its registry in memory or Redis."""
    env = {
        "DEMO_DB": ":memory:",
        "WSMANAGER_RECOVERY_WINDOW": str(WINDOW),
        "WSMANAGER_DRAIN_PERIOD": "0",
        "WSMANAGER_LOG": "WARNING",
    }
    if registry == "redis":
        env = cluster_env(request.getfixturevalue("redis_url"), **env)
    proc = server_process(server_kind, app="tests.e2e.close_app:application", env=env)
    proc.start()
    yield proc
    proc.stop()


class Member(Peer):
    """A socket whose ``rpc.connected`` (and so its resume token) is kept."""

    hello: dict[str, Any]

    @classmethod
    async def join(cls, url: str) -> Member:
        # Reads nothing while the pump runs: every frame is buffered, none refused.
        member = cls(await websockets.connect(url, max_queue=None))
        member.hello = json.loads(await asyncio.wait_for(member.ws.recv(), TIMEOUT))
        assert member.hello["method"] == "rpc.connected", member.hello
        member.id = member.hello["params"]["id"]
        return member

    def resume_url(self, url: str) -> str:
        recovery = self.hello["params"]["recovery"]
        return f"{url}?{urlencode({'wsm_resume': recovery['token'], 'wsm_offset': recovery['offset']})}"

    async def bye(self, code: int = 1000) -> None:
        """Close on purpose, as the library's clients do: ``rpc.close``, then the close frame."""
        await self.ws.send(BYE if code == 1000 else json.dumps(_bye(code)))
        await self.ws.close(code)


def _bye(code: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "rpc.close", "params": {"code": code}}


def room_url(server: ServerProcess, room: str) -> str:
    return f"{server.ws_url}/ws/room/{room}/"


async def join_all(url: str, n: int) -> list[Member]:
    members: list[Member] = []
    while len(members) < n:
        members += await asyncio.gather(*(Member.join(url) for _ in range(min(25, n - len(members)))))
    return members


async def until(probe: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], within: float) -> Any:
    """Call ``probe`` until ``done`` holds for what it returns; that value. Fails after ``within`` s."""
    deadline = time.monotonic() + within
    while not done(value := await probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r:.400} after {within} s")
        await asyncio.sleep(0.05)
    return value


async def assert_not_resumable(server: ServerProcess, room: str, members: list[Member]) -> None:
    """No member's token resumes its session: each attempt is a fresh socket, told "unknown"."""
    url = room_url(server, room)
    attempts = await asyncio.gather(*(Member.join(m.resume_url(url)) for m in members))
    pairs = zip(attempts, members, strict=True)
    outcomes = {(a.id == m.id, a.hello["params"].get("recovery_failed")) for a, m in pairs}
    await asyncio.gather(*(a.bye() for a in attempts))
    assert outcomes == {(False, "unknown")}


async def race(
    server: ServerProcess, room: str, close: Callable[[Member], Awaitable[None]]
) -> dict[str, Any]:
    """:data:`MEMBERS` members of ``room`` close at once while the server pumps notifications
    into the room; returns the server's counters once the pump has stopped."""
    control = await Member.join(room_url(server, f"{room}ctl"))
    members = await join_all(room_url(server, room), MEMBERS)
    assert await control.call("pump", room, PUMPS, 100, PAUSE) == PUMPS
    await members[-1].notification("tick")  # the pump reaches the room

    async def lane(mine: list[Member]) -> None:
        for member in mine:
            await close(member)

    await asyncio.gather(*(lane(members[i::LANES]) for i in range(LANES)))
    assert await control.call("stop") > 0
    left = await until(lambda: control.call("members", room), lambda ids: not ids, RELEASED_WITHIN)
    assert left == []
    await assert_not_resumable(server, room, members)
    stats: dict[str, Any] = await control.call("stats")
    await control.bye()
    return stats


async def test_members_closing_with_1000_while_broadcasts_go_out_are_released(
    server: ServerProcess, server_kind: str
) -> None:
    """Issue 21, item 4: a clean close racing a server write is a close, never a park."""
    if server_kind == "hypercorn":
        pytest.skip("hypercorn reports a client's close as 1006 (pgjones/hypercorn#127): rpc.close is needed")
    before = await _counters(server)
    stats = await race(server, "bare", lambda m: m.ws.close(1000))
    if server_kind in WRITES_FAIL_AFTER_CLOSE and _raced(stats["counters"]) == _raced(before):
        # Every member was released and none resumes (asserted above); whether a write met
        # a closed connection on the way is up to the machine's timing, which no client can
        # force. On a quiet machine it does (dozens each run); a loaded one may close every
        # member before the pump's next write. Say so rather than pass on an untried race.
        pytest.skip(f"no write met a closing member this run: {stats['counters']}")


async def test_members_saying_rpc_close_while_broadcasts_go_out_are_released(
    server: ServerProcess, server_kind: str
) -> None:
    """The same race with ``rpc.close`` before each close frame: released on every server."""
    await race(server, "bye", Member.bye)


def _raced(counters: dict[str, int]) -> int:
    """Writes that met a member on its way out: closed, failed, or already unregistered."""
    names = ("dropped_closed", "dropped_write_failed", "dropped_unknown")
    return sum(counters.get(name, 0) for name in names)


async def _counters(server: ServerProcess) -> dict[str, int]:
    probe = await Member.join(room_url(server, "probe"))
    stats: dict[str, Any] = await probe.call("stats")
    await probe.bye()
    counters: dict[str, int] = stats["counters"]
    return counters


# --- the demo chat: who() and the room's sockets, `left` at once ---------------------------


async def left(watcher: Peer, member: str) -> None:
    """Wait for the demo's word that ``member`` left (``left``, or a ``presence`` burst)."""
    await _heard(watcher, member, "left", lambda params: params.get("left", []))


async def _heard(
    watcher: Peer, member: str, event: str, burst: Callable[[dict[str, Any]], list[Any]]
) -> None:
    while True:
        message = await watcher.recv_json()
        params = message.get("params") or {}
        if message.get("method") == event and params.get("id") == member:
            return
        if message.get("method") == "presence" and member in burst(params):
            return


async def chat_member(server: ServerProcess, room: str, watcher: Peer) -> Member:
    """A member of ``room`` whose arrival ``watcher`` has heard (a member who joins and
    leaves within the demo's presence interval is never announced at all)."""
    member = await Member.join(chat_url(server, room, "?name=ann"))
    await _heard(watcher, member.id, "joined", lambda params: [m["id"] for m in params.get("joined", [])])
    return member


async def parked(server: ServerProcess) -> int:
    return (await _counters(server)).get("parked", 0)


async def assert_gone(
    server: ServerProcess, room: str, watcher: Peer, member: Member, *, heard: bool = False
) -> None:
    """``member`` left at once: announced (``heard`` already), out of who() and of the room's
    sockets, its token spent."""
    if not heard:
        await left(watcher, member.id)
    assert [m["id"] for m in await watcher.call("who")] == [watcher.id]
    assert await room_ids(server, room) == {watcher.id}
    back = await Member.join(member.resume_url(chat_url(server, room)))
    assert back.id != member.id and back.hello["params"]["recovery_failed"] == "unknown"
    await back.bye()


async def test_a_chat_member_who_says_rpc_close_leaves_at_once(server: ServerProcess) -> None:
    """Issue 20: under hypercorn such a member stayed in who() and the room's sockets, and
    the others heard `left` only when the recovery window ended."""
    before = await parked(server)
    watcher = await Peer.open(chat_url(server, "bye1", "?name=watcher"))
    member = await chat_member(server, "bye1", watcher)
    await member.bye()
    await assert_gone(server, "bye1", watcher, member)
    assert await parked(server) == before
    await watcher.close()


async def test_rpc_close_then_a_connection_lost_without_a_close_frame_is_still_a_close(
    server: ServerProcess,
) -> None:
    before = await parked(server)
    watcher = await Peer.open(chat_url(server, "bye2", "?name=watcher"))
    member = await chat_member(server, "bye2", watcher)
    await member.ws.send(BYE)
    await left(watcher, member.id)  # released on the word, before anything else
    member.ws.transport.abort()
    await assert_gone(server, "bye2", watcher, member, heard=True)
    assert await parked(server) == before
    await watcher.close()


async def test_after_rpc_close_the_server_closes_a_socket_its_client_keeps_open(
    server: ServerProcess,
) -> None:
    """The client says rpc.close and sends more instead of closing: the server answers nothing
    more, closes with the code rpc.close gave, and the member is gone."""
    watcher = await Peer.open(chat_url(server, "bye3", "?name=watcher"))
    member = await chat_member(server, "bye3", watcher)
    await member.ws.send(json.dumps(_bye(4000)))
    await member.ws.send('{"jsonrpc":"2.0","method":"who","id":1}')
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            frame = json.loads(await asyncio.wait_for(member.ws.recv(), TIMEOUT))
            assert frame.get("id") != 1, frame  # the call after rpc.close is never answered
    rcvd = member.ws.close_exc.rcvd  # type: ignore[union-attr]
    assert rcvd is not None and rcvd.code == 4000
    await assert_gone(server, "bye3", watcher, member)
    await watcher.close()


async def test_the_python_client_closing_leaves_at_once(server: ServerProcess) -> None:
    """wsmanager.client's close() says rpc.close: released at once, never parked, on every server."""
    from wsmanager.client import connect

    before = await parked(server)
    watcher = await Peer.open(chat_url(server, "bye4", "?name=watcher"))
    client = await connect(chat_url(server, "bye4", "?name=py"), heartbeat_interval=None)
    member = client.id
    assert member is not None and await room_ids(server, "bye4") == {watcher.id, member}
    await _heard(watcher, member, "joined", lambda params: [m["id"] for m in params.get("joined", [])])
    await client.close()
    await left(watcher, member)
    assert await room_ids(server, "bye4") == {watcher.id}
    assert await parked(server) == before
    await watcher.close()
