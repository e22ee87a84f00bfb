"""A Redis outage, with a real Redis server that the test stops and starts again."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
import websockets

from tests.e2e.client import Peer, http
from tests.redis_support import redis_server_argv
from tests.servers import DaphneProcess, free_port, wait_for_port

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

T = TypeVar("T")


class RedisServer:
    """A throw-away redis-server on a free port, keeping nothing on disk."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        cmd = redis_server_argv(self.port)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, proc=self.proc)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        if os.environ.get("WSMANAGER_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server is not installed (WSMANAGER_REQUIRE_REDIS=1)", pytrace=False)
        pytest.skip("redis-server is not installed")
    server = RedisServer().start()
    yield server
    server.kill()


async def until(predicate_coro: Callable[[], Awaitable[T | None]], timeout: float = 20.0) -> T:
    """Retry ``predicate_coro`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await predicate_coro()
        except (OSError, websockets.InvalidStatus, websockets.InvalidHandshake, TimeoutError):
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def test_outage_keeps_open_sockets_refuses_new_ones_and_recovers(redis_server: RedisServer) -> None:
    """While Redis is down: open sockets live, calls needing Redis fail clearly,
    new sockets are refused (no hang). When it is back (empty), everything works
    again, including the sockets that were open all along, without a restart."""
    env = {
        "REDIS_URL": redis_server.url,
        "WSMANAGER_HEARTBEAT": "0.5",
        "DEMO_DB": ":memory:",
        "WSMANAGER_LOG": "ERROR",
    }
    with DaphneProcess(env=env) as daphne:
        room = f"{daphne.ws_url}/ws/chat/outage/"
        a = await Peer.open(room)
        redis_server.kill()

        assert await a.call("rpc.ping") == "pong"
        reply = await a.request("who")
        assert reply["error"]["code"] == -32005
        with pytest.raises(websockets.InvalidStatus) as refused:  # open_timeout: no hang
            await websockets.connect(room, open_timeout=15)
        assert refused.value.response.status_code == 403
        for method, path, body in (
            ("POST", f"/api/sockets/{a.id}/messages", {"text": "hi"}),
            ("POST", "/api/rooms/outage/messages", {"text": "hi"}),
            ("GET", "/api/rooms/outage/sockets", None),
        ):
            response = await http(method, daphne, path, json=body)
            assert response.status_code == 503, (path, response.text)
            assert "unavailable" in response.json()["error"]

        redis_server.start()  # same port, no data
        b = await until(lambda: Peer.open(room))
        # The socket that stayed open is re-registered by its process.
        members = await until(lambda: _who_has(b, {a.id, b.id}))
        assert {m["id"] for m in members} == {a.id, b.id}
        await b.call("whisper", a.id, "back")
        assert (await a.notification("message"))["params"]["text"] == "back"
        await a.close()
        await b.close()


async def _who_has(peer: Peer, ids: set[str]) -> list[dict[str, str]] | None:
    members: list[dict[str, str]] = await peer.call("who")
    return members if {m["id"] for m in members} == ids else None


async def test_outage_keeps_local_sends_by_id_and_fails_remote_ones(redis_server: RedisServer) -> None:
    """While Redis is down, a send by id to a socket of the same process is delivered (no
    registry needed); one to another process fails with -32005 instead of hanging."""
    env = {
        "REDIS_URL": redis_server.url,
        "WSMANAGER_HEARTBEAT": "0.5",
        "DEMO_DB": ":memory:",
        "WSMANAGER_LOG": "ERROR",
    }
    app = "tests.e2e.rpc_app:application"
    with DaphneProcess(app=app, env=env) as one, DaphneProcess(app=app, env=env) as two:
        a1 = await Peer.open(f"{one.ws_url}/ws/model/")
        a2 = await Peer.open(f"{one.ws_url}/ws/model/")
        b = await Peer.open(f"{two.ws_url}/ws/model/")
        await a1.call("tell", b.id, "before")  # across processes while Redis is up
        assert (await b.notification("note"))["params"] == ["before"]
        redis_server.kill()

        assert await a1.call("tell", a2.id, "local") is None
        assert (await a2.notification("note"))["params"] == ["local"]
        reply = await a1.request("tell", b.id, "far")
        assert reply["error"]["code"] == -32005
        await b.nothing()
        for peer in (a1, a2, b):
            await peer.close()
