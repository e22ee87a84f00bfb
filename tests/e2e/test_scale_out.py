"""Several real server processes (each server in turn) sharing a real Redis: the cluster behaves as one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import websockets

from tests import redis_support
from tests.e2e.client import Peer, chat_url, cluster_env, http, room_ids, running
from tests.servers import DAPHNE_BURST_ARGS, ServerProcess, server_process
from wsmanager.registry.redis import RedisRegistry

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

redis_url = redis_support.redis_url

HEARTBEAT = 0.5


@pytest.fixture(scope="module")
def cluster(redis_url: str, server_kind: str) -> Iterator[list[ServerProcess]]:
    """Two processes of each server in turn on one Redis (a fresh key prefix per module).

    The load below comes from one address, so the per-address cap is off. channels_redis
    forgets a group member 1 s after it was added (``group_expiry``): wsmanager does not
    use the layer's groups, so every test here holds with it, and
    :func:`test_group_membership_outlives_the_channel_layer_group_expiry` proves it.
    """
    env = cluster_env(redis_url, DEMO_MAX_PER_ADDRESS="0", CHANNELS_GROUP_EXPIRY="1")
    # A burst of handshakes on 2 shared cores can take longer than daphne's
    # default 5 s handshake timeout; docs/scaling.md recommends raising it.
    args = DAPHNE_BURST_ARGS if server_kind == "daphne" else ()
    with running([server_process(server_kind, env=env, extra_args=args) for _ in range(2)]) as servers:
        yield servers


ws = chat_url


async def test_whisper_and_send_cross_processes(cluster: list[ServerProcess]) -> None:
    """Members on different processes whisper and chat as if on one server."""
    a = await Peer.open(ws(cluster[0], "x1"))
    b = await Peer.open(ws(cluster[1], "x1"))
    await a.call("whisper", b.id, "psst")
    assert (await b.notification("message"))["params"]["private"] is True
    assert await b.call("send", "hello all") == {"delivered": 2}
    assert (await a.notification("message"))["params"]["text"] == "hello all"
    assert (await b.notification("message"))["params"]["text"] == "hello all"
    await a.close()
    await b.close()


async def test_who_and_http_listing_see_the_whole_room(cluster: list[ServerProcess]) -> None:
    """who() and GET /api/rooms/<room>/sockets list members of every process."""
    peers = [await Peer.open(ws(cluster[i % 2], "x2")) for i in range(4)]
    expected = {p.id for p in peers}
    for server in cluster:
        assert await room_ids(server, "x2") == expected
    members = await peers[0].call("who")
    assert {m["id"] for m in members} == expected
    for peer in peers:
        await peer.close()
    for server in cluster:
        for _ in range(100):
            if not await room_ids(server, "x2"):
                break
            await asyncio.sleep(0.05)
        assert await room_ids(server, "x2") == set()


async def test_views_of_one_process_reach_sockets_of_another(cluster: list[ServerProcess]) -> None:
    """A view on process 1 sends by id and to a room holding sockets of process 2."""
    b = await Peer.open(ws(cluster[1], "x3"))
    c = await Peer.open(ws(cluster[0], "x3"))
    response = await http("POST", cluster[0], f"/api/sockets/{b.id}/messages", json={"text": "direct"})
    assert response.status_code == 202
    assert (await b.notification("message"))["params"]["text"] == "direct"
    response = await http("POST", cluster[0], "/api/rooms/x3/messages", json={"text": "room"})
    assert response.json() == {"delivered": 2}
    for peer in (b, c):
        assert (await peer.notification("message"))["params"]["text"] == "room"
    await b.close()
    await c.close()


async def test_invoke_crosses_processes_with_its_result(cluster: list[ServerProcess]) -> None:
    """A view on process 1 invokes a client method on a socket of process 2."""
    b = await Peer.open(ws(cluster[1], "x4"))
    body = {"method": "double", "params": [21], "timeout": 5}
    call = asyncio.ensure_future(http("POST", cluster[0], f"/api/sockets/{b.id}/invoke", json=body))
    request = await b.recv_json()
    assert request["method"] == "double"
    await b.send_raw(f'{{"jsonrpc": "2.0", "id": {request["id"]}, "result": 42}}')
    response = await call
    assert response.status_code == 200
    assert response.json() == {"result": 42}
    await b.close()


async def test_group_membership_outlives_the_channel_layer_group_expiry(
    cluster: list[ServerProcess],
) -> None:
    """With channels_redis group_expiry=1 s (the cluster's), a room still gets messages once
    the layer has forgotten its groups."""
    one, two = cluster
    a = await Peer.open(ws(one, "exp"))
    b = await Peer.open(ws(two, "exp"))
    # channels_redis drops a group member added at t from the first group_send at which
    # int(now) - group_expiry >= t: 2 s after the last join, on any machine (time never
    # runs slower than the clock, so this wait cannot be too short).
    await asyncio.sleep(2)
    response = await http("POST", two, "/api/rooms/exp/messages", json={"text": "still here"})
    assert response.json() == {"delivered": 2}
    for peer in (a, b):
        assert (await peer.notification("message"))["params"]["text"] == "still here"
    await a.close()
    await b.close()


def joining(cluster: list[ServerProcess], **extra: str) -> ServerProcess:
    """A further process of the cluster's server kind on the cluster's Redis and key prefix
    (not started), its environment changed by ``extra``."""
    env = {
        key: cluster[0].env[key]
        for key in (
            "REDIS_URL",
            "WSMANAGER_REDIS_PREFIX",
            "DEMO_DB",
            "WSMANAGER_LOG",
            "CHANNELS_GROUP_EXPIRY",
        )
    }
    return server_process(cluster[0].kind, env={**env, **extra}, extra_args=cluster[0].extra_args)


async def test_sigkill_prunes_the_dead_process_sockets(cluster: list[ServerProcess]) -> None:
    """A process killed with SIGKILL: its sockets leave lists and rooms; sends get 404.

    The survivor is a process of the cluster: the dead process's liveness key expires
    1.5 of its own heartbeats after the kill, and the survivor's next listing forgets it."""
    survivor = cluster[0]
    with joining(cluster, WSMANAGER_HEARTBEAT=str(HEARTBEAT)) as doomed:
        live = await Peer.open(ws(survivor, "kill"))
        dead = [await Peer.open(ws(doomed, "kill")) for _ in range(3)]
        assert await room_ids(survivor, "kill") == {live.id} | {p.id for p in dead}
        doomed.kill()
        killed_at = time.monotonic()
        while await room_ids(survivor, "kill") != {live.id}:
            assert time.monotonic() - killed_at < 30, "dead sockets were never pruned"
            await asyncio.sleep(0.1)
        response = await http("POST", survivor, f"/api/sockets/{dead[0].id}/messages", json={"text": "x"})
        assert response.status_code == 404
        assert {m["id"] for m in await live.call("who")} == {live.id}
        await live.close()


async def test_clean_shutdown_removes_sockets_at_once(cluster: list[ServerProcess]) -> None:
    """SIGTERM: the process removes its sockets before it exits (no TTL wait: its
    heartbeat is a minute, so its liveness key would outlive the test)."""
    survivor = cluster[0]
    leaving = joining(cluster, WSMANAGER_HEARTBEAT="60").start()
    try:
        peers = [await Peer.open(ws(leaving, "term")) for _ in range(3)]
        assert len(await room_ids(survivor, "term")) == 3
        await asyncio.to_thread(leaving.stop)  # the clients answer the close meanwhile
        assert await room_ids(survivor, "term") == set()
        for peer in peers:
            await peer.ws.close()
    finally:
        leaving.stop()


async def test_a_burst_of_500_simultaneous_connects_all_succeed(cluster: list[ServerProcess]) -> None:
    """500 clients connecting at the same moment (50 rooms) all get their id."""
    urls = [ws(cluster[i % 2], f"burst{i % 50}") for i in range(500)]
    peers = await asyncio.gather(*(Peer.open(u, open_timeout=60) for u in urls))
    assert len({p.id for p in peers}) == 500
    assert sum([len(await room_ids(cluster[0], f"burst{r}")) for r in range(50)]) == 500
    await asyncio.gather(*(p.close() for p in peers))


async def test_broadcast_to_1000_sockets_of_one_process_drops_nothing(
    cluster: list[ServerProcess], redis_url: str
) -> None:
    """A group of 1,000 sockets on one process gets every one of 5 broadcasts from another.

    The sockets join the group through the shared registry (as a view or a
    command of any process could), so the test measures the broadcast and
    not 500,000 chat ``joined`` notices.
    """
    peers: list[Peer] = []
    for start in range(0, 1000, 250):
        batch = [ws(cluster[0], f"solo{start + i}") for i in range(250)]
        peers += await asyncio.gather(*(Peer.open(u, open_timeout=60) for u in batch))
    registry = RedisRegistry(url=redis_url, prefix=f"{cluster[0].env['WSMANAGER_REDIS_PREFIX']}:wsm")
    try:
        await asyncio.gather(*(registry.group_add("chat", "room.wide", p.id) for p in peers))
    finally:
        await registry.close()
    for round_no in range(5):
        response = await http("POST", cluster[1], "/api/rooms/wide/messages", json={"text": f"r{round_no}"})
        assert response.json() == {"delivered": 1000}

    async def five_messages(peer: Peer) -> list[str]:
        return [(await peer.notification("message", timeout=30))["params"]["text"] for _ in range(5)]

    received = await asyncio.gather(*(five_messages(p) for p in peers))
    assert all(texts == ["r0", "r1", "r2", "r3", "r4"] for texts in received)
    await asyncio.gather(*(p.close() for p in peers))


async def test_unknown_path_is_refused_on_every_process(cluster: list[ServerProcess]) -> None:
    """The cluster refuses unknown paths cleanly, like one process."""
    for server in cluster:
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(server.ws_url + "/ws/none/")
