"""Handshakes and idle sockets against the server's floor.

``python -m bench.handshakes [--sockets 5000] [--repeat 2] [--window 50]``

Opens ``--sockets`` WebSockets (at most ``--window`` handshakes in flight,
each waiting for the server's first frame where it sends one) to a fresh
server process of each system in turn, after 20 to warm it up, and reads
connects/s (the wall time of the burst) and the server's RSS growth per
idle socket (VmRSS before and after, the server quiet):

* ``raw``: the raw ``websockets`` server (bench/apps/raw.py), the ceiling;
* ``floor``: uvicorn (its default WebSocket implementation) serving
  bench/apps/floor.py, an ASGI app that accepts and sends one frame: what
  the server costs before any application;
* ``wsmanager``: uvicorn serving bench/apps/wsm.py's ``ws/rpc/`` (an
  ``RpcHandler``, ``websocket_app`` with its auth step, as by default);
* ``wsmanager, no auth``: the same with ``auth=False``.

The systems run in turn, repeat after repeat, so each ratio is read
against runs of the same moment. The client runs on the same machine, so
these are pairs to compare, not absolute capacities. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from tests.servers import ROOT, free_port, wait_for_port

from .servers import raise_fd_limit, rss_kib, wait_quiet
from .wsclient import WsConn, open_ws

#: name -> (command after ``python -m``, path, whether the server sends a first frame)
SYSTEMS: dict[str, tuple[list[str], str, bool]] = {
    "raw": (["bench.apps.raw"], "/ws/rpc/", False),
    "floor": (["uvicorn", "bench.apps.floor:application"], "/ws/", True),
    "wsmanager": (["uvicorn", "bench.apps.wsm:application"], "/ws/rpc/", True),
    "wsmanager, no auth": (["uvicorn", "bench.apps.wsm_noauth:application"], "/ws/rpc/", True),
}


async def burst(port: int, path: str, hello: bool, count: int, window: int) -> tuple[float, list[WsConn]]:
    gate = asyncio.Semaphore(window)
    conns: list[WsConn] = []

    async def one() -> None:
        async with gate:
            conn = await open_ws("127.0.0.1", port, path)
            if hello:
                await conn.recv()
            conns.append(conn)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - start, conns


async def measure(name: str, sockets: int, window: int) -> dict[str, float]:
    command, path, hello = SYSTEMS[name]
    port = free_port()
    argv = [sys.executable, "-m", *command, "--port", str(port)]
    if command[0] == "uvicorn":
        argv += ["--log-level", "warning", "--lifespan", "off"]
    server = await asyncio.to_thread(
        subprocess.Popen, argv, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT))
    )
    conns: list[WsConn] = []
    try:
        await asyncio.to_thread(wait_for_port, port, 20.0, server)
        _, warm = await burst(port, path, hello, 20, window)
        conns += warm
        await wait_quiet([server.pid])
        before = rss_kib(server.pid)
        elapsed, opened = await burst(port, path, hello, sockets, window)
        conns += opened
        await wait_quiet([server.pid])
        after = rss_kib(server.pid)
    finally:
        server.kill()
        server.wait()
        for conn in conns:
            conn.abort()
    return {"connects/s": sockets / elapsed, "KiB/socket": (after - before) / sockets}


async def main(sockets: int, repeat: int, window: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in SYSTEMS}
    for _ in range(repeat):
        for name in SYSTEMS:
            runs[name].append(await measure(name, sockets, window))
            print(name, runs[name][-1], file=sys.stderr, flush=True)
    out: dict[str, Any] = {"sockets": sockets, "repeat": repeat, "window": window, "systems": {}}
    for name, results in runs.items():
        out["systems"][name] = {
            key: round(statistics.median(r[key] for r in results), 1) for key in results[0]
        }
        out["systems"][name]["connects/s of raw, per repeat"] = [
            round(r["connects/s"] / raw["connects/s"], 2) for r, raw in zip(results, runs["raw"], strict=True)
        ]
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.handshakes", description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--window", type=int, default=50, help="handshakes in flight at most")
    args = parser.parse_args()
    raise_fd_limit()
    print(json.dumps(asyncio.run(main(args.sockets, args.repeat, args.window)), indent=2))
