"""Bytes and server CPU per message, JSON vs MessagePack, permessage-deflate on and off:
``python -m bench.encodings_cost``.

Runs the server's own code paths in this process, on two messages: a chat message
(the demo's ``message`` notification) and a notification of about 10 KB of JSON (a
list of records). For each it prints:

* **bytes** on the wire: the frame's payload as JSON text and as MessagePack, and
  compressed as permessage-deflate sends it (raw deflate, ``Z_SYNC_FLUSH``, the
  4-byte tail removed) with the settings each server negotiates for a browser:
  15-bit windows (uvicorn with websockets or wsproto, hypercorn) and 12-bit windows
  with memLevel 5 (uvicorn's default websockets-sansio). Compressed sizes are the
  first message on a fresh socket and the steady state (the 50th of a series of 50
  messages that differ as a room's or a list's do, the context kept between them,
  as every server here does);
* **CPU** per message (median of 5 runs of ``time.process_time`` over a loop, after
  a warm-up): encoding it once (``protocol.encode_notification``), translating it for
  MessagePack sockets (``connection._encodings.to_binary``: once per broadcast), and
  compressing it (per socket: each socket's compressor has its own context, so a
  broadcast to N compressed sockets compresses N times); and on the way in, decoding
  a call of the same size in each encoding (``protocol.decode``,
  ``encodings.unpack``) and decompressing it;
* **memory** a compressed socket holds for its compressor and decompressor after
  its first message (``tracemalloc``, which sees zlib's allocations).

Results: docs/benchmarks.md ("Encodings and compression").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websockets

from tests.servers import server_process
from wsmanager.connection._encodings import to_binary
from wsmanager.connection._outbox import frame
from wsmanager_client import encodings, protocol

from .servers import cpu_ticks, wait_quiet

RUNS = 5
#: Sockets in the room of the real-server fan-out (``--server``).
LISTENERS = 20

#: (label, window bits, memLevel) of what the servers negotiate (docs/compression.md).
DEFLATE = (("deflate 15 bits", 15, 8), ("deflate 12 bits, memLevel 5", 12, 5))


WORDS = [
    "the",
    "build",
    "is",
    "green",
    "again",
    "lunch",
    "at",
    "noon",
    "who",
    "reviews",
    "the",
    "patch",
    "deploy",
    "after",
    "tests",
    "pass",
]


def chat_message(n: int = 0) -> dict[str, Any]:
    """The ``n``-th of a conversation: senders and texts vary as in a room."""
    words = [WORDS[(n * 7 + i * 3) % len(WORDS)] for i in range(6 + n % 5)]
    return {
        "from": f"Qm9iIGlzIGEgc29ja2V0IGlkIG9mIDQzIGNoYXJhY3{n % 4:04d}",
        "name": ("ann", "bob", "cy", "dee")[n % 4],
        "room": "lobby",
        "text": " ".join(words).capitalize() + f" #{n}",
    }


def ten_kb_notification(n: int = 0) -> dict[str, Any]:
    """The ``n``-th of a series of task lists (ids, scores and states change)."""
    rows = [
        {
            "id": 1000 * n + i,
            "title": f"Task number {i} of batch {n}",
            "done": (i + n) % 3 == 0,
            "owner": f"user{(i + n) % 7}",
            "score": (i + n) * 1.5,
        }
        for i in range(110)
    ]
    return {"tasks": rows}


def deflated(payloads: list[bytes], bits: int, mem: int) -> list[int]:
    """Each payload's size as permessage-deflate sends it, one compressor for all (context kept)."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits, mem)
    sizes = []
    for data in payloads:
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        sizes.append(len(out) - 4 if out.endswith(b"\x00\x00\xff\xff") else len(out))
    return sizes


def cpu_us(fn: Callable[[], object], loops: int) -> float:
    """Median CPU microseconds of one ``fn()``."""
    fn()
    runs = []
    for _ in range(RUNS):
        start = time.process_time()
        for _ in range(loops):
            fn()
        runs.append((time.process_time() - start) / loops * 1e6)
    return statistics.median(runs)


def memory_kib(bits: int, mem: int, payload: bytes) -> float:
    """What a socket's compressor and decompressor hold after one message (KiB)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits, mem)
    decompressor = zlib.decompressobj(-bits)
    out = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    decompressor.decompress(out)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del compressor, decompressor
    return held / 1024


def report(label: str, make: Callable[[int], dict[str, Any]], loops: int) -> None:
    params = make(0)
    text = protocol.encode_notification("message", params)
    message = frame(text)
    packed = to_binary(message)["bytes"]
    raw = text.encode()
    print(f"\n## {label}\n")
    print("| encoding | bytes | " + " | ".join(f"{d[0]}: first / steady" for d in DEFLATE) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in DEFLATE) + " |")
    series = [protocol.encode_notification("message", make(n)) for n in range(50)]
    for name, data, datas in (
        ("JSON", raw, [t.encode() for t in series]),
        ("MessagePack", packed, [encodings.transcode(t) for t in series]),
    ):
        cells = []
        for _, bits, mem in DEFLATE:
            sizes = deflated(datas, bits, mem)
            cells.append(f"{sizes[0]} / {sizes[-1]}")
        print(f"| {name} | {len(data)} | " + " | ".join(cells) + " |")
    call = protocol.encode_request("send", params, 1)
    call_packed = encodings.transcode(call)
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15, 8)
    deflated_json = compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)

    def compress_once(bits: int, mem: int, data: bytes) -> Callable[[], object]:
        """One socket's compressor sending the series in turn (its context kept)."""
        comp = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits, mem)
        pack = data != raw
        datas = [encodings.transcode(t) if pack else t.encode() for t in series]
        turn = iter(range(1 << 62))
        return lambda: comp.compress(datas[next(turn) % 50]) + comp.flush(zlib.Z_SYNC_FLUSH)

    def translate() -> object:
        return to_binary(frame(text))  # a new message each time: no cache hit

    rows = [
        ("encode once (JSON text)", lambda: protocol.encode_notification("message", params)),
        ("translate for MessagePack sockets (once per broadcast)", translate),
        ("deflate 15 bits, JSON (per socket)", compress_once(15, 8, raw)),
        ("deflate 15 bits, MessagePack (per socket)", compress_once(15, 8, packed)),
        ("deflate 12 bits memLevel 5, JSON (per socket)", compress_once(12, 5, raw)),
        ("decode a call, JSON", lambda: protocol.decode(call, max_batch=100)),
        ("decode a call, MessagePack", lambda: encodings.unpack(call_packed, max_batch=100)),
        ("inflate, JSON (per socket)", lambda: zlib.decompressobj(-15).decompress(deflated_json)),
    ]
    print("\n| server work per message | CPU µs |\n| --- | --- |")
    for name, fn in rows:
        print(f"| {name} | {cpu_us(fn, loops):.1f} |")
    print("\n| memory a compressed socket holds | KiB |\n| --- | --- |")
    for name, bits, mem in DEFLATE:
        print(f"| {name} | {memory_kib(bits, mem, raw):.0f} |")


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (hypercorn and granian serve from a worker process)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_ticks(pids: list[int]) -> int:
    return sum(cpu_ticks(p) for p in pids)


async def fanout_cpu(
    url: str, pid: int, encoding: str, compress: bool, make: Callable[[int], dict[str, Any]], count: int
) -> tuple[float, int]:
    """Server CPU µs per delivered message of ``count`` broadcasts to :data:`LISTENERS`
    sockets, and the payload bytes of each (as read: after inflating, if compressed)."""
    protocols = [websockets.Subprotocol(encodings.SUBPROTOCOLS["msgpack"])] if encoding == "msgpack" else None
    options: dict[str, Any] = {"subprotocols": protocols, "compression": "deflate" if compress else None}
    room = f"{url}/ws/room/{encoding}-{int(compress)}-{count}/"
    listeners = [await websockets.connect(room, max_size=None, **options) for _ in range(LISTENERS)]
    sender = await websockets.connect(f"{room}?listen=0", max_size=None, **options)
    for ws in [*listeners, sender]:
        await ws.recv()  # rpc.connected
    pids = tree(pid)
    await wait_quiet(pids)

    async def read(ws: Any) -> int:
        total = 0
        for _ in range(count):
            total += len(await ws.recv())
        return total

    readers = [asyncio.ensure_future(read(ws)) for ws in listeners]
    start = tree_ticks(pids)
    for n in range(count):
        message = {"jsonrpc": "2.0", "method": "broadcast_data", "params": [make(n)], "id": n}
        await sender.send(encodings.pack(message) if encoding == "msgpack" else json.dumps(message))
        await sender.recv()
    read_bytes = await asyncio.gather(*readers)
    ticks = tree_ticks(pids) - start
    for ws in [*listeners, sender]:
        await ws.close()
    per_tick = 1e6 / os.sysconf("SC_CLK_TCK")
    return ticks * per_tick / (count * LISTENERS), read_bytes[0] // count


async def servers_report(kind: str) -> None:
    print(f"\n## On a real server: {kind}, {LISTENERS} listeners in one room\n")
    header = "| message | encoding | compression | server CPU µs per delivered message | payload bytes |"
    print(header)
    print("| --- | --- | --- | --- | --- |")
    env = {"DJANGO_SETTINGS_MODULE": "bench.settings", "BENCH_URLCONF": "bench.apps.wsm"}
    with server_process(kind, app="bench.apps.wsm:application", env=env) as server:
        assert server.proc is not None
        for label, make, count in (("chat", chat_message, 400), ("10 KB", ten_kb_notification, 60)):
            for encoding in ("json", "msgpack"):
                for compress in (False, True):
                    runs = [
                        await fanout_cpu(server.ws_url, server.proc.pid, encoding, compress, make, count)
                        for _ in range(RUNS)
                    ]
                    cpu = statistics.median(r[0] for r in runs)
                    print(
                        f"| {label} | {encoding} | {'on' if compress else 'off'} | {cpu:.0f} | {runs[0][1]} |"
                    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--server", help="also measure a fan-out on this server kind (e.g. uvicorn-sansio)")
    parser.add_argument(
        "--quick", action="store_true", help="few loops (the smoke test): bytes exact, CPU rough"
    )
    args = parser.parse_args()
    print(json.dumps({"python": sys.version.split()[0], "zlib": zlib.ZLIB_RUNTIME_VERSION}))
    scale = 100 if args.quick else 1
    report("A chat message (the demo's `message`)", chat_message, 20_000 // scale)
    report("A notification of about 10 KB of JSON", ten_kb_notification, 500 // scale)
    if args.server:
        asyncio.run(servers_report(args.server))


if __name__ == "__main__":
    main()
