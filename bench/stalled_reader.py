"""A room with one client that stops reading, on every server: do the others notice?

``python -m bench.stalled_reader [--servers daphne,uvicorn,...] [--repeat 3]``
starts the demo chat (in-memory registry) on each server. In one room:
``--readers`` fast readers (default 20) and, in the "stalled" case, one more
socket whose client stops reading after the handshake (its transport is
paused and its receive buffer is small, so the server's writes to it back
up). ``--senders`` sockets (default 20) then send ``--messages`` room
messages in all (default 3,000) with the demo's ``send``, one call at a
time each. The figure is the fast readers' deliveries per second, from the
first send until every fast reader has every message, with and without the
stalled reader, interleaved, median of ``--repeat``; and the server's
resident memory growth over the run. The stalled socket is closed by the
server with 1013 once its backlog passes ``max_send_backlog`` (256 KiB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import time
from typing import Any

from tests.servers import SERVER_KINDS, server_process

from .servers import raise_fd_limit, rss_kib
from .wsclient import WsConn, open_ws


async def _stalled(port: int, path: str) -> WsConn:
    """A socket that reads nothing after the handshake (a 4 KiB receive buffer)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    _, conn = await loop.create_connection(lambda: WsConn(f"ws://127.0.0.1:{port}{path}"), sock=sock)
    await conn.opened
    await conn.recv()  # rpc.connected
    assert conn.transport is not None
    conn.transport.pause_reading()
    return conn


async def _room(port: int, readers: int, senders: int, messages: int, stalled: bool) -> float:
    path = f"/ws/chat/st{time.monotonic_ns() % 10**9}/"
    per_sender = messages // senders
    total = per_sender * senders
    got = [0] * readers
    done = asyncio.get_running_loop().create_future()
    complete = 0

    def reader(i: int) -> Any:
        def on_text(text: str) -> None:
            nonlocal complete
            if '"message"' in text:
                got[i] += 1
                if got[i] == total:
                    complete += 1
                    if complete == readers and not done.done():
                        done.set_result(None)

        return on_text

    fast = [await open_ws("127.0.0.1", port, path) for _ in range(readers)]
    for i, conn in enumerate(fast):
        await conn.recv()
        conn.on_text = reader(i)
    slow = await _stalled(port, path) if stalled else None
    talkers = [await open_ws("127.0.0.1", port, path) for _ in range(senders)]
    for conn in talkers:
        await conn.recv()
    await asyncio.sleep(0.3)

    async def talk(conn: WsConn) -> None:
        for k in range(per_sender):
            conn.send_text(json.dumps({"jsonrpc": "2.0", "method": "send", "params": ["x" * 100], "id": k}))
            while json.loads(await conn.recv()).get("id") != k:
                pass

    started = time.monotonic()
    await asyncio.gather(*(talk(c) for c in talkers))
    await asyncio.wait_for(done, 120)
    rate = readers * total / (time.monotonic() - started)
    for conn in fast + talkers + ([slow] if slow else []):
        conn.abort()
    return rate


async def run(kinds: list[str], readers: int, senders: int, messages: int, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    env = {"DEMO_DB": ":memory:", "DEMO_MAX_PER_ADDRESS": "0", "WSMANAGER_LOG": "ERROR"}
    for kind in kinds:
        with server_process(kind, env=env) as server:
            rates: dict[str, list[float]] = {"without": [], "with": []}
            rss_before = rss_kib(server.serving_pid())
            for _ in range(repeat):
                rates["without"].append(await _room(server.port, readers, senders, messages, False))
                rates["with"].append(await _room(server.port, readers, senders, messages, True))
            grown = rss_kib(server.serving_pid()) - rss_before
        without, with_ = statistics.median(rates["without"]), statistics.median(rates["with"])
        out[kind] = {
            "without_stalled": round(without),
            "with_stalled": round(with_),
            "ratio": round(with_ / without, 3),
            "rss_growth_kib": grown,
            "runs": {k: [round(v) for v in vs] for k, vs in rates.items()},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default=",".join(SERVER_KINDS))
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    raise_fd_limit()
    kinds = [k for k in args.servers.split(",") if k]
    result = asyncio.run(run(kinds, args.readers, args.senders, args.messages, args.repeat))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
