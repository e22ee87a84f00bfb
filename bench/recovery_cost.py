"""What connection recovery costs: fan-out with recovery on vs off, and Redis memory.

``python -m bench.recovery_cost [--listeners 300] [--messages 200] [--repeat 3]``
runs the demo chat under daphne with ``WSMANAGER_RECOVERY_WINDOW`` 0 (off)
and 60 (on), interleaved, in memory (one process) and on Redis (two
processes, the listeners split between them). Ten senders each send their
share of ``--messages`` room messages (the demo's ``send``, which is one
``notify_group``) as fast as the server answers; every listener reads every
frame. It prints deliveries per second (median of the runs) for each case
and the on/off ratio.

On Redis it also measures, with ``MEMORY USAGE``: the journal stream's
bytes per kept message (the demo's message notifications, about 200 bytes
of text), and the bytes a recoverable socket adds: its entry's three fields
(window, key hash, journal start) and, while parked, its member of ``P:parked``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

import redis

from tests.servers import DaphneProcess

from .servers import new_prefix, raise_fd_limit, redis_cleanup, redis_problem
from .wsclient import WsConn, open_ws

SENDERS = 10


def _env(window: str, redis_url: str, prefix: str) -> dict[str, str]:
    env = {
        "DEMO_DB": ":memory:",
        "DEMO_MAX_PER_ADDRESS": "0",
        "WSMANAGER_LOG": "WARNING",
        "WSMANAGER_RECOVERY_WINDOW": window,
    }
    if redis_url:
        env |= {"REDIS_URL": redis_url, "WSMANAGER_REDIS_PREFIX": prefix}
    return env


async def _fan_out(ports: list[int], listeners: int, messages: int) -> float:
    """Deliveries per second of ``messages`` room messages to ``listeners`` sockets."""
    room = f"/ws/chat/bench{os.urandom(3).hex()}/"
    got = 0
    done = asyncio.get_running_loop().create_future()
    want = listeners * messages

    def count(text: str) -> None:
        nonlocal got
        if '"message"' in text:
            got += 1
            if got >= want and not done.done():
                done.set_result(None)

    conns: list[WsConn] = []
    for i in range(0, listeners, 50):
        batch = await asyncio.gather(
            *(open_ws("127.0.0.1", ports[(i + j) % len(ports)], room) for j in range(min(50, listeners - i)))
        )
        for conn in batch:
            await conn.recv()  # rpc.connected
            conn.on_text = count
        conns += batch
    senders = [await open_ws("127.0.0.1", ports[i % len(ports)], room) for i in range(SENDERS)]
    for sender in senders:
        await sender.recv()
    await asyncio.sleep(0.5)  # presence notices settle

    async def send(sender: WsConn, n: int) -> None:
        for k in range(n):
            sender.send_text(json.dumps({"jsonrpc": "2.0", "method": "send", "params": [f"m{k}"], "id": k}))
            while True:  # one call at a time: the answer, not a notification
                reply = json.loads(await sender.recv())
                if reply.get("id") == k:
                    break

    started = time.monotonic()
    await asyncio.gather(*(send(s, messages // SENDERS) for s in senders))
    await asyncio.wait_for(done, 120)
    took = time.monotonic() - started
    for conn in conns + senders:
        conn.abort()
    return want / took


def _servers(window: str, count: int, redis_url: str, prefix: str) -> list[DaphneProcess]:
    args = ("--websocket_connect_timeout", "60")
    return [DaphneProcess(env=_env(window, redis_url, prefix), extra_args=args).start() for _ in range(count)]


async def fan_out(listeners: int, messages: int, repeat: int, redis_url: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    modes = [("memory", "", 1)] + ([("redis", redis_url, 2)] if redis_url else [])
    for mode, url, count in modes:
        rates: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(repeat):
            for label, window in (("off", "0"), ("on", "60")):
                prefix = new_prefix()
                servers = _servers(window, count, url, prefix)
                try:
                    rates[label].append(await _fan_out([s.port for s in servers], listeners, messages))
                finally:
                    for server in servers:
                        server.stop()
                    if url:
                        redis_cleanup(url, prefix)
        off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
        results[mode] = {
            "off": round(off),
            "on": round(on),
            "ratio": round(on / off, 3),
            "runs": {k: [round(v) for v in vs] for k, vs in rates.items()},
        }
    return results


async def redis_memory(redis_url: str, sockets: int, messages: int) -> dict[str, float]:
    """Bytes per kept message and per recoverable socket, read off Redis."""
    prefix = new_prefix()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    (server,) = _servers("60", 1, redis_url, prefix)
    try:
        room = "/ws/chat/mem/"
        conns = [await open_ws("127.0.0.1", server.port, room) for _ in range(sockets)]
        for conn in conns:
            await conn.recv()
        sender = conns[0]
        for k in range(messages):
            text = "x" * 120  # a chat line
            sender.send_text(json.dumps({"jsonrpc": "2.0", "method": "send", "params": [text], "id": k}))
            while json.loads(await sender.recv()).get("id") != k:
                pass
        keys = f"{{{prefix}:wsm}}"  # the demo's registry keyspace: its prefix in braces
        journal = f"{prefix}:wsm:journal:{{chat}}"
        length = int(client.xlen(journal))
        stream_bytes = int(client.memory_usage(journal, samples=0) or 0)
        entries = client.hgetall(f"{keys}:sockets:chat")
        sample = json.loads(next(iter(entries.values())))
        extra_fields = len(json.dumps({k: sample[k] for k in ("recovery", "resume_key", "since")}))
        for conn in conns:
            conn.abort()
        await asyncio.sleep(1.0)  # every socket is parked
        parked = int(client.zcard(f"{keys}:parked"))
        parked_bytes = int(client.memory_usage(f"{keys}:parked", samples=0) or 0)
        return {
            "journal_entries": length,
            "bytes_per_kept_message": round(stream_bytes / max(1, length), 1),
            "entry_bytes_added_per_socket": extra_fields,
            "parked_sockets": parked,
            "parked_bytes_per_socket": round(parked_bytes / max(1, parked), 1),
        }
    finally:
        server.stop()
        redis_cleanup(redis_url, prefix)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=300)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    raise_fd_limit()
    url = "" if redis_problem(args.redis) else args.redis
    out: dict[str, Any] = {"fan_out": asyncio.run(fan_out(args.listeners, args.messages, args.repeat, url))}
    if url:
        out["redis_memory"] = asyncio.run(redis_memory(url, 200, 500))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
