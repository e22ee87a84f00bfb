"""What depends on the server, checked on each of them (daphne, uvicorn with ``websockets``,
``websockets-sansio`` and ``wsproto``, hypercorn, granian): the adapter's detection, its
synchronous writes, close codes and reasons, the ASGI lifespan, and the drain on SIGTERM
(alone and on Redis with a second process).

The app is tests/e2e/servers_app.py. Each test runs once per server (the
``server_kind`` fixture of tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from tests import redis_support
from tests.e2e.client import LOSES_LEFT_AT_SHUTDOWN, Peer, chat_url, cluster_env, room_ids
from tests.e2e.servers_app import SMALL_FRAME
from tests.servers import (
    GunicornUvicornProcess,
    ServerProcess,
    every_implementation,  # noqa: F401  (server_kind: also uvicorn's other implementations)
    server_process,
)

pytestmark = pytest.mark.e2e

redis_url = redis_support.redis_url

APP = "tests.e2e.servers_app:application"
#: What each server names itself in the adapter (all three uvicorn implementations are "uvicorn").
ADAPTER_NAME = {"uvicorn-wsproto": "uvicorn", "uvicorn-sansio": "uvicorn"}
#: Servers that run the ASGI lifespan protocol (daphne does not).
LIFESPAN_SERVERS = {"uvicorn", "uvicorn-sansio", "uvicorn-wsproto", "hypercorn", "granian"}
#: What each server logs when an application does not handle the lifespan scope.
UNSUPPORTED_LIFESPAN = ("lifespan' protocol appears unsupported", "Lifespan error", "Lifespan errored")


def servers_app(kind: str, **env: str) -> ServerProcess:
    return server_process(kind, app=APP, env={"DEMO_DB": ":memory:", "WSMANAGER_DRAIN_PERIOD": "0.5", **env})


@pytest.fixture(scope="module")
def server(server_kind: str) -> Iterator[ServerProcess]:
    with servers_app(server_kind) as proc:
        yield proc


def url(server: ServerProcess, path: str) -> str:
    return f"{server.ws_url}/ws/{path}"


async def closed_with(ws: Any, timeout: float = 10.0) -> tuple[int, str] | None:
    """Read until the connection closes: the close frame's (code, reason); None: no close frame."""
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    rcvd = ws.close_exc.rcvd
    return None if rcvd is None else (int(rcvd.code), rcvd.reason)


async def test_the_adapter_recognises_the_server(server: ServerProcess, server_kind: str) -> None:
    peer = await Peer.open(url(server, "close/"))
    assert await peer.call("server") == ADAPTER_NAME.get(server_kind, server_kind)
    await peer.close()


#: Servers whose frames wsmanager writes itself, without awaiting the ASGI send (wsmanager.servers).
DIRECT_WRITES = {"uvicorn", "uvicorn-sansio", "uvicorn-wsproto"}


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_frames_are_written_at_once_where_the_server_allows_it(
    server: ServerProcess, server_kind: str, compression: str | None
) -> None:
    """On uvicorn (each implementation, with and without permessage-deflate) every frame
    to an idle socket goes through the adapter's synchronous write, none falls back;
    elsewhere the awaited ASGI send writes them. Either way all arrive, in order."""
    peer = await Peer.open(url(server, "close/"), compression=compression)
    result = await peer.call("ticks", 50)
    expected = server_kind in DIRECT_WRITES
    assert result == {"direct": expected, "written": 50 if expected else 0}
    ticks = [(await peer.notification("tick"))["params"] for _ in range(50)]
    assert ticks == [[i] for i in range(50)]
    await peer.close()


@pytest.mark.parametrize("code", [1000, 1001, 1008, 1009, 1011, 1012, 1013, 3000, 4403, 4429, 4999])
async def test_a_close_from_the_handler_reaches_the_client_with_code_and_reason(
    server: ServerProcess, code: int
) -> None:
    """Every code a handler may close with, including those daphne refuses through ASGI."""
    peer = await Peer.open(url(server, "close/"))
    await peer.send_raw(json.dumps({"jsonrpc": "2.0", "method": "close_me", "params": [code, f"bye {code}"]}))
    assert await closed_with(peer.ws) == (code, f"bye {code}")


async def test_on_connect_refusal_with_a_code_reaches_the_client(server: ServerProcess) -> None:
    async with websockets.connect(url(server, "close/?refuse=4403")) as ws:
        assert await closed_with(ws) == (4403, "refused here")


async def test_oversize_frame_closes_1009(server: ServerProcess) -> None:
    peer = await Peer.open(url(server, "small/"))
    await peer.send_raw("x" * (SMALL_FRAME + 1))
    assert await closed_with(peer.ws) == (1009, "message too big")


async def test_failing_on_receive_closes_1011(server: ServerProcess) -> None:
    async with websockets.connect(url(server, "fail/")) as ws:
        await ws.send("echo me")
        assert await ws.recv() == "echo me"
        await ws.send("boom")
        assert await closed_with(ws) == (1011, "")


async def test_third_socket_of_a_user_closes_4429(server: ServerProcess) -> None:
    first = await Peer.open(url(server, "capped/?user=5"))
    second = await Peer.open(url(server, "capped/?user=5"))
    async with websockets.connect(url(server, "capped/?user=5")) as third:
        assert await closed_with(third) == (4429, "too many connections")
    assert await first.call("rpc.ping") == "pong"
    await first.close()
    await second.close()


async def test_persistent_rate_limit_violation_closes_1008(server: ServerProcess) -> None:
    """One frame passes, the next three are refused (-32002, -32002, then the close).

    The bucket refills at one token an hour: the strikes cannot reset between
    two frames, however slowly they go out. Nothing is sent after the frame that
    closes: data arriving after the server closed its end makes its TCP stack
    reset the connection, and the reset discards the close frame unread."""
    peer = await Peer.open(url(server, "rated/"))
    for i in range(4):
        await peer.send_raw(json.dumps({"jsonrpc": "2.0", "method": "rpc.ping", "id": i}))
    answers = sorted([await peer.recv_json() for _ in range(3)], key=lambda answer: answer["id"])
    assert [(a["id"], a.get("result"), a.get("error", {}).get("code")) for a in answers] == [
        (0, "pong", None),
        (1, None, -32002),
        (2, None, -32002),
    ]
    assert await closed_with(peer.ws) == (1008, "rate limit exceeded")


async def test_handshake_to_an_unknown_path_is_refused(server: ServerProcess) -> None:
    """HTTP 404, or 403 on daphne (the only refusal ASGI can make it send)."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(url(server, "nowhere/"))
    assert refused.value.response.status_code == (403 if server.kind == "daphne" else 404)


# -- lifespan and drain: each test runs its own process, since it stops it -------------------


async def test_lifespan_starts_the_node_and_no_server_warns(server_kind: str) -> None:
    """Servers with a lifespan run wsmanager's start-up and shutdown; none logs it as unsupported."""
    proc = servers_app(server_kind)
    with proc:
        peer = await Peer.open(url(proc, "close/"))
        assert await peer.call("rpc.ping") == "pong"
        await peer.close()
    log = proc.log_text()
    assert not [line for line in log.splitlines() if any(w in line for w in UNSUPPORTED_LIFESPAN)]
    if server_kind in LIFESPAN_SERVERS:
        assert "lifespan start-up: node wsmanager.node" in log
        assert "lifespan shutdown: " in log and "node stopped" in log
    else:
        assert "lifespan start-up" not in log


async def test_sigterm_closes_every_socket_with_1012_and_a_reason(server_kind: str) -> None:
    """On SIGTERM each client gets 1012 "server restarting" (not a dropped connection); the
    process then exits by itself."""
    proc = servers_app(server_kind, WSMANAGER_DRAIN_PERIOD="1")
    with proc:
        peers = [await Peer.open(chat_url(proc, "drain")) for _ in range(5)]
        raw = await websockets.connect(url(proc, "fail/"))
        proc.terminate()
        outcomes = await asyncio.gather(*(closed_with(p.ws) for p in peers), closed_with(raw))
        assert outcomes == [(1012, "server restarting")] * 6
        proc.wait(30)  # exits by itself (with whatever code the server uses for SIGTERM)
    assert "draining 6 socket(s)" in proc.log_text()


@pytest.mark.redis
async def test_sigterm_removes_the_process_sockets_from_the_shared_registry(
    server_kind: str, redis_url: str
) -> None:
    """With two processes on Redis, once a terminated process has exited, the other one lists
    none of its sockets (a heartbeat of 60 s rules out pruning) and its members heard ``left``
    (except where a ``left`` can be lost at shutdown: tests/e2e/test_presence_e2e.py's
    test_stopped_process_sockets_leave_once is an xfail there)."""
    env = cluster_env(redis_url, WSMANAGER_HEARTBEAT="60", WSMANAGER_DRAIN_PERIOD="0.5")
    with servers_app(server_kind, **env) as survivor:
        leaving = servers_app(server_kind, **env).start()
        try:
            watcher = await Peer.open(chat_url(survivor, "rolling"))
            peers = [await Peer.open(chat_url(leaving, "rolling")) for _ in range(3)]
            assert await room_ids(survivor, "rolling") == {watcher.id} | {p.id for p in peers}
            leaving.terminate()
            outcomes = await asyncio.gather(*(closed_with(p.ws) for p in peers))
            assert outcomes == [(1012, "server restarting")] * 3
            leaving.wait(30)
            assert await room_ids(survivor, "rolling") == {watcher.id}
            if server_kind not in LOSES_LEFT_AT_SHUTDOWN:
                lefts = {(await watcher.notification("left"))["params"]["id"] for _ in peers}
                assert lefts == {p.id for p in peers}
            await watcher.close()
        finally:
            leaving.kill()


async def test_gunicorn_with_uvicorn_workers_drains_every_worker() -> None:
    """Under gunicorn's master, each uvicorn worker drains its own sockets on SIGTERM."""
    proc = GunicornUvicornProcess(app=APP, env={"DEMO_DB": ":memory:", "WSMANAGER_DRAIN_PERIOD": "0.5"})
    with proc:
        sockets = [await websockets.connect(chat_url(proc, "gunicorn")) for _ in range(6)]
        proc.terminate()
        outcomes = await asyncio.gather(*(closed_with(ws) for ws in sockets))
        assert outcomes == [(1012, "server restarting")] * 6
        await asyncio.to_thread(proc.wait, 30)
    log = proc.log_text()
    assert log.count("lifespan start-up: node") == 2
    drained = [int(line.split("draining ")[1].split()[0]) for line in log.splitlines() if "draining " in line]
    assert sum(drained) == 6
