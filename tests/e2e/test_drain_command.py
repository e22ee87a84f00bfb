"""``manage.py wsmanager drain NODE|--all``: a rolling deploy asks live processes to drain.

Two demo processes on Redis. Draining one closes its sockets with 1012
"server restarting" and turns its readiness probe to 503, while the other
process's sockets stay open; ``--all`` then drains the other one too.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import websockets

from tests import redis_support
from tests.e2e.client import Peer, chat_url, cluster_env, http, running
from tests.servers import ROOT, DaphneProcess

# Each step runs manage.py in a process of its own (Django starts each time): seconds on
# a quiet machine, more under load; the test gets the time three commands need.
pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.timeout(180)]

redis_url = redis_support.redis_url


@pytest.fixture
def pair(redis_url: str) -> Iterator[list[DaphneProcess]]:
    env = cluster_env(redis_url, WSMANAGER_HEARTBEAT="0.5")
    with running([DaphneProcess(env=env) for _ in range(2)]) as servers:
        yield servers


async def manage(server: DaphneProcess, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "manage.py", "wsmanager", *args]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=60)

    return await asyncio.to_thread(run)


async def node_of(server: DaphneProcess, peer: Peer) -> str:
    """The node holding ``peer``'s socket, as the registry says."""
    done = await manage(server, "--handler", "chat", "list", "--json")
    entries = [json.loads(line) for line in done.stdout.splitlines()]
    (node,) = [e["node"] for e in entries if e["id"] == peer.id]
    return str(node)


async def until_listed(server: DaphneProcess, nodes: set[str]) -> None:
    """Until ``stats`` lists both nodes (each publishes on its heartbeat)."""
    deadline = time.monotonic() + 20
    while True:
        done = await manage(server, "stats", "--json")
        if nodes <= set(json.loads(done.stdout or "{}").get("nodes", {})):
            return
        assert time.monotonic() < deadline, done.stdout + done.stderr
        await asyncio.sleep(0.3)


async def close_of(peer: Peer) -> tuple[int | None, str]:
    try:
        while True:
            await asyncio.wait_for(peer.ws.recv(), 20)
    except websockets.ConnectionClosed as closed:
        return (None, "") if closed.rcvd is None else (int(closed.rcvd.code), closed.rcvd.reason)


async def test_drain_one_node_then_all(pair: list[DaphneProcess]) -> None:
    first, second = pair
    on_first = [await Peer.open(chat_url(first, "deploy")) for _ in range(2)]
    on_second = [await Peer.open(chat_url(second, "deploy")) for _ in range(2)]
    nodes = [await node_of(first, on_first[0]), await node_of(first, on_second[0])]
    await until_listed(first, set(nodes))

    done = await manage(first, "drain", nodes[0], "--period", "0.2")
    assert done.returncode == 0, done.stderr
    assert f"asked {nodes[0]} to drain" in done.stdout
    assert [await close_of(p) for p in on_first] == [(1012, "server restarting")] * 2
    assert (await http("GET", first, "/readyz")).status_code == 503
    assert (await http("GET", second, "/readyz")).status_code == 200
    assert all([await p.call("rpc.ping") == "pong" for p in on_second])  # the other node serves on

    done = await manage(first, "drain", "--all", "--period", "0.2")
    assert done.returncode == 0, done.stderr
    assert [await close_of(p) for p in on_second] == [(1012, "server restarting")] * 2


async def test_an_unknown_node_is_refused_with_the_live_ones(pair: list[DaphneProcess]) -> None:
    first, second = pair
    peers = [await Peer.open(chat_url(first, "unknown")), await Peer.open(chat_url(second, "unknown"))]
    nodes = {await node_of(first, peers[0]), await node_of(first, peers[1])}
    await until_listed(first, nodes)
    done = await manage(first, "drain", "wsmanager.node.nosuch")
    assert done.returncode != 0
    assert "no live node wsmanager.node.nosuch" in done.stderr
    assert all(node in done.stderr for node in nodes)
