"""Sockets that never read cost what their send backlog allows, no more (real daphne).

Before: ten sockets that stopped reading, in a room that got 3,000 messages
of 2 KB, grew the server by 232 MB (an 8 MiB backlog each, plus queues),
and the memory stayed after they were cut. Now each is closed with 1013
once 256 KiB wait for it, the drop is counted, the reading member gets
every message, and the server's memory grows by a few MiB.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.rawsocket import RawSocket
from tests.e2e.test_hostile_input import server, settled, state, watched
from tests.servers import every_implementation  # noqa: F401  (server_kind: also uvicorn's other implementations)

pytestmark = pytest.mark.e2e

__all__ = ["server"]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_ten_stalled_readers_are_closed_1013_and_the_room_gets_everything(server: object) -> None:
    pid = server.proc.pid  # type: ignore[attr-defined]
    await settled(server)  # type: ignore[arg-type]
    before = (await state(server))["stats"].get("dropped_slow_client", 0)  # type: ignore[arg-type]
    rss_before = rss_bytes(pid)
    async with watched(server, "lenient", "stalled") as reader:  # type: ignore[arg-type]
        stalled = [
            await RawSocket.open(server.port, "/ws/lenient/stalled/", rcvbuf=4096)  # type: ignore[attr-defined]
            for _ in range(10)
        ]
        for sock in stalled:
            await sock.hello()
        assert await reader.call("flood_all", 3000, 2000) == 3000
        blobs = [m["params"]["seq"] for m in reader.inbox if m.get("method") == "blob"]
        assert blobs == list(range(3000))  # the member that reads lost nothing
        reader.inbox.clear()
        after = await state(server)  # type: ignore[arg-type]
        assert after["stats"]["dropped_slow_client"] >= before + 10
        assert after["counts"]["hostile.lenient"] == 1  # all ten left the registry and the room
        grown = rss_bytes(pid) - rss_before
        print(f"server RSS grew by {grown / 2**20:.1f} MiB for 10 stalled readers")
        # Ten 256 KiB backlogs and their frames; 232 MB before the limit was lowered.
        assert grown < 64 * 2**20, f"server grew by {grown / 2**20:.0f} MiB"
        for sock in stalled:
            sock.abort()
