"""Dead peers: daphne's keep-alive pings find them, and wsmanager forgets them everywhere."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.e2e.client import Peer, chat_url, room_ids
from tests.e2e.rawsocket import RawSocket
from tests.servers import DaphneProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pinging_server() -> Iterator[DaphneProcess]:
    """The demo with a 1 s idle ping and a 1 s pong timeout."""
    args = ("--ping-interval", "1", "--ping-timeout", "1")
    with DaphneProcess(env={"DEMO_DB": ":memory:"}, extra_args=args) as server:
        yield server


async def test_a_silent_peer_is_closed_by_keepalive_and_leaves_registry_room_and_presence(
    pinging_server: DaphneProcess,
) -> None:
    """A peer that stops answering (no pong, no FIN) is closed; it leaves the room, others get `left`."""
    watcher = await Peer.open(chat_url(pinging_server, "keepalive"))  # answers pings by itself
    silent = await RawSocket.open(pinging_server.port, "/ws/chat/keepalive/")
    silent_id = await silent.hello()
    assert await room_ids(pinging_server, "keepalive") == {watcher.id, silent_id}
    assert (await watcher.notification("joined"))["params"]["id"] == silent_id

    left = await watcher.notification("left", timeout=30)  # the silent peer never reads again
    assert left["params"] == {"id": silent_id}
    deadline = time.monotonic() + 30
    while await room_ids(pinging_server, "keepalive") != {watcher.id}:
        assert time.monotonic() < deadline, "the dead peer is still listed"
        await asyncio.sleep(0.1)
    assert await watcher.call("rpc.ping") == "pong"  # the live peer was kept all along
    silent.abort()
    await watcher.close()
