"""Presence in a burst: N sockets join one room of the demo chat under daphne.

``python -m bench.presence_burst [--sockets 1000] [--batch 100]`` starts the
demo (in-memory registry), opens the sockets in batches of ``--batch`` at
once, each reading every frame, and waits until no frame has arrived for a
second. It prints how many frames the clients received (past their
``rpc.connected``), how long the burst took from the first handshake to the
last frame, and the server's CPU seconds meanwhile. Before presence was
gathered per interval, each join was one frame to every member already
there: N(N-1)/2 frames.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

from tests.servers import DaphneProcess

from .servers import cpu_ticks, raise_fd_limit
from .wsclient import open_ws

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


async def burst(sockets: int, batch: int) -> dict[str, float | int]:
    raise_fd_limit()
    env = {"DEMO_DB": ":memory:", "DEMO_MAX_PER_ADDRESS": "0", "WSMANAGER_LOG": "WARNING"}
    with DaphneProcess(env=env, extra_args=("--websocket_connect_timeout", "60")) as server:
        assert server.proc is not None
        frames = 0
        last = time.monotonic()

        def count(_text: str) -> None:
            nonlocal frames, last
            frames += 1
            last = time.monotonic()

        conns = []
        ticks = cpu_ticks(server.proc.pid)
        started = time.monotonic()
        for start in range(0, sockets, batch):
            size = min(batch, sockets - start)
            path = "/ws/chat/burst/"
            opened = await asyncio.gather(*(open_ws("127.0.0.1", server.port, path) for _ in range(size)))
            for conn in opened:
                await conn.recv()  # rpc.connected
                conn.on_text = count
            conns += opened
        while time.monotonic() - last < 1.0:  # noqa: ASYNC110 - quiet means no frame for 1 s
            await asyncio.sleep(0.1)
        took = last - started
        cpu = (cpu_ticks(server.proc.pid) - ticks) / CLOCK_TICKS
        for conn in conns:
            conn.abort()
    return {"sockets": sockets, "frames": frames, "seconds": round(took, 2), "server_cpu_s": round(cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(burst(args.sockets, args.batch))))


if __name__ == "__main__":
    main()
