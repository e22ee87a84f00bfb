"""Connection recovery against real servers (each in turn) and a real Redis.

A drop is the client's TCP connection aborted (no close frame: the server
sees 1006). The demo runs with a recovery window (``WSMANAGER_RECOVERY_WINDOW``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import redis.asyncio as aioredis
import websockets

from demo_chat.handlers import ChatHandler
from tests import redis_support
from tests.e2e.client import TIMEOUT, Peer, chat_url, cluster_env, http, room_ids, running
from tests.servers import (
    ServerProcess,
    every_implementation,  # noqa: F401  (server_kind: also uvicorn's other implementations)
    server_process,
)
from wsmanager.registry import PARKED

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

redis_url = redis_support.redis_url


class Session(Peer):
    """A peer that keeps its ``rpc.connected`` and the offsets it saw."""

    hello: dict[str, Any]
    highest = "0-0"
    seen: set[str]

    @classmethod
    async def start(cls, url: str) -> Session:
        peer = cls(await websockets.connect(url))
        peer.hello = json.loads(await asyncio.wait_for(peer.ws.recv(), TIMEOUT))
        assert peer.hello["method"] == "rpc.connected", peer.hello
        peer.id = peer.hello["params"]["id"]
        peer.highest = peer.hello["params"].get("recovery", {}).get("offset", "0-0")
        peer.seen = set()
        return peer

    def resume_url(self, base: str) -> str:
        token = self.hello["params"]["recovery"]["token"]
        query = urlencode({"wsm_resume": token, "wsm_offset": self.highest})
        return f"{base}?{query}"

    async def recv_json(self, timeout: float = TIMEOUT) -> Any:
        """The next frame; a notification whose offset was seen already is dropped,
        as a recovering client does (the replay starts a little early)."""
        while True:
            message = await super().recv_json(timeout)
            offset = message.get("offset") if isinstance(message, dict) else None
            if offset is None:
                return message
            if offset not in self.seen:
                self.seen.add(offset)
                if _key(offset) > _key(self.highest):
                    self.highest = offset
                return message

    async def message(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        return await self.notification("message", timeout)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.ws.transport.abort()


def _key(offset: str) -> tuple[int, int]:
    ms, _, seq = offset.partition("-")
    return int(ms), int(seq)


async def texts(peer: Session, n: int) -> list[str]:
    return [(await peer.message())["params"]["text"] for _ in range(n)]


async def parked_count(server: ServerProcess) -> int:
    """How many sockets ``server``'s process has parked (its ``parked`` counter)."""
    response = await http("GET", server, "/api/stats")
    assert response.status_code == 200, response.text
    count: int = response.json()["counters"].get("parked", 0)
    return count


async def until_parked(server: ServerProcess, count: int) -> None:
    """Wait until ``server``'s process has parked ``count`` sockets in all (it notices a drop
    when its server reports it); 30 s at most, which only turns a hang into a failure."""
    deadline = time.monotonic() + 30
    while await parked_count(server) < count:
        assert time.monotonic() < deadline, f"{server} never parked {count} sockets"
        await asyncio.sleep(0.05)


async def until_reaped_and_parked(server: ServerProcess, socket_id: str) -> None:
    """Wait until ``socket_id`` is routed to the parked sessions in the Redis registry of
    ``server``'s cluster: a survivor parks a dead process's recoverable sockets when it
    reaps it, after node_ttl. Read with plain Redis commands, so that this read reaps
    nothing itself (a registry's reads would)."""
    key = f"{{{server.env['WSMANAGER_REDIS_PREFIX']}:wsm}}:routes:{ChatHandler.handler_name}"
    raw = aioredis.from_url(server.env["REDIS_URL"], decode_responses=True)
    try:
        deadline = time.monotonic() + 30
        while (route := await raw.hget(key, socket_id)) != PARKED:
            assert time.monotonic() < deadline, f"{socket_id} was never parked: routed to {route}"
            await asyncio.sleep(0.1)
    finally:
        await raw.aclose()


@pytest.fixture(scope="module")
def recovering(redis_url: str, server_kind: str) -> Iterator[ServerProcess]:
    env = cluster_env(redis_url, WSMANAGER_RECOVERY_WINDOW="60", WSMANAGER_HEARTBEAT="0.5")
    with running([server_process(server_kind, env=env)]) as (server,):
        yield server


async def test_a_drop_resumes_with_its_id_room_and_every_missed_message_once_in_order(
    recovering: ServerProcess,
) -> None:
    a = await Session.start(chat_url(recovering, "r1", "?name=ann"))
    b = await Session.start(chat_url(recovering, "r1", "?name=bob"))
    await a.call("send", "before")
    assert await texts(a, 1) == ["before"]
    parked = await parked_count(recovering)
    a.abort()
    await until_parked(recovering, parked + 1)  # the server noticed the drop and parked the socket
    assert await room_ids(recovering, "r1") == {a.id, b.id}
    for i in range(3):
        assert await b.call("send", f"gap {i}") == {"delivered": 2}
    assert await b.call("whisper", a.id, "psst") == {"delivered": 1}
    response = await http("POST", recovering, "/api/rooms/r1/messages", json={"text": "from a view"})
    assert response.json() == {"delivered": 2}

    back = await Session.start(a.resume_url(chat_url(recovering, "r1")))
    assert back.id == a.id
    assert back.hello["params"]["recovered"] is True, back.hello
    assert back.hello["params"]["replayed"] >= 5  # and whatever a had not read yet
    back.seen = set(a.seen)
    got = await texts(back, 5)
    assert got == ["gap 0", "gap 1", "gap 2", "psst", "from a view"]
    await b.call("send", "live")
    assert await texts(back, 1) == ["live"]
    await b.nothing(0.5, ignore=("message",))  # b never saw a left or a joined
    members = {m["id"] for m in await b.call("who")}
    assert members == {a.id, b.id}
    await back.close()
    await b.close()


async def test_a_forged_token_gets_a_fresh_socket_told_why(recovering: ServerProcess) -> None:
    a = await Session.start(chat_url(recovering, "r2"))
    a.abort()
    token = a.hello["params"]["recovery"]["token"]
    query = urlencode({"wsm_resume": token[:-3] + "xyz", "wsm_offset": a.highest})
    other = await Session.start(f"{chat_url(recovering, 'r2')}?{query}")
    assert other.id != a.id
    assert other.hello["params"]["recovered"] is False
    assert other.hello["params"]["recovery_failed"] == "unknown"
    await other.close()


async def test_resume_on_another_process_after_the_first_was_killed(
    recovering: ServerProcess, server_kind: str
) -> None:
    """SIGKILL of the socket's process: it resumes on a survivor (the module's process), nothing
    lost, nobody saw it leave."""
    survivor = recovering
    with running([server_process(server_kind, env=survivor.env)]) as (doomed,):
        a = await Session.start(chat_url(doomed, "k1", "?name=ann"))
        b = await Session.start(chat_url(survivor, "k1", "?name=bob"))
        await b.call("send", "before")
        assert await texts(a, 1) == ["before"]
        await texts(b, 1)
        doomed.kill()
        for i in range(3):
            await b.call("send", f"after kill {i}")
        assert await b.call("whisper", a.id, "psst") == {"delivered": 1}
        await until_reaped_and_parked(survivor, a.id)  # past node_ttl: the survivor reaped the dead process
        assert await room_ids(survivor, "k1") == {a.id, b.id}
        await b.call("send", "after the reaping")

        back = await Session.start(a.resume_url(chat_url(survivor, "k1")))
        assert back.id == a.id and back.hello["params"]["recovered"] is True
        back.seen = set(a.seen)
        got = await texts(back, 5)
        assert got == ["after kill 0", "after kill 1", "after kill 2", "psst", "after the reaping"]
        await b.call("send", "live")
        assert await texts(back, 1) == ["live"]
        await b.nothing(0.5, ignore=("message",))
        assert {m["id"] for m in await b.call("who")} == {a.id, b.id}
        await back.close()
        await b.close()


async def test_a_drop_longer_than_the_window_gives_a_new_id_and_one_left(
    redis_url: str, server_kind: str
) -> None:
    env = cluster_env(redis_url, WSMANAGER_RECOVERY_WINDOW="2", WSMANAGER_HEARTBEAT="0.4")
    with running([server_process(server_kind, env=env)]) as (server,):
        a = await Session.start(chat_url(server, "w1"))
        b = await Session.start(chat_url(server, "w1"))
        a.abort()
        await until_parked(server, 1)
        assert a.id in await room_ids(server, "w1")  # parked: still a member
        left = await b.notification("left", timeout=10)
        assert left["params"]["id"] == a.id
        back = await Session.start(a.resume_url(chat_url(server, "w1")))
        assert back.id != a.id
        assert back.hello["params"]["recovered"] is False
        assert back.hello["params"]["recovery_failed"] in {"unknown", "expired"}
        await b.nothing(0.8, ignore=("joined", "presence"))  # no second left
        await back.close()
        await b.close()


async def test_a_drained_socket_resumes_on_another_process(
    recovering: ServerProcess, server_kind: str
) -> None:
    """A deploy: SIGTERM closes the socket with 1012 and parks it; the client resumes on
    the other process (the module's) with its id, and nobody in its room saw it leave."""
    staying = recovering
    env = {**staying.env, "WSMANAGER_DRAIN_PERIOD": "0"}
    with running([server_process(server_kind, env=env)]) as (leaving,):
        a = await Session.start(chat_url(leaving, "d1", "?name=ann"))
        b = await Session.start(chat_url(staying, "d1", "?name=bob"))
        leaving.terminate()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await a.ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert await b.call("send", "while you moved") == {"delivered": 2}
        back = await Session.start(a.resume_url(chat_url(staying, "d1")))
        assert back.id == a.id and back.hello["params"]["recovered"] is True
        back.seen = set(a.seen)
        assert await texts(back, 1) == ["while you moved"]
        await b.nothing(0.5, ignore=("message",))
        assert {m["id"] for m in await b.call("who")} == {a.id, b.id}
        await back.close()
        await b.close()
        await asyncio.to_thread(leaving.wait)
