"""Where an idle socket's memory goes: a ``tracemalloc`` breakdown by library.

``python -m bench.idle_memory [--sockets 1000] [--app bench.apps.wsm:application] [--path /ws/rpc/]``

Starts uvicorn (its default WebSocket implementation) in a child process
with ``tracemalloc`` on (12 frames), opens 20 sockets to warm the server up,
takes a snapshot, opens ``--sockets`` more, waits until they are idle, takes
another, and compares the two. Each allocation still alive is charged to
the innermost library on its stack (uvicorn, websockets, channels, django,
asgiref, wsmanager) and to the file that allocated it, and the wsmanager
lines with the most memory are listed. Prints JSON: KiB per socket.

What it measures is the Python heap (``tracemalloc``), not the process's
RSS: it leaves out the allocator's slack, the kernel's socket buffers and
C libraries' own allocations. The RSS per idle socket is the
``connections`` scenario of ``python -m bench``. Tracing slows the server
several times; only memory is read here, never time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from tests.servers import ROOT, free_port, wait_for_port

from .servers import raise_fd_limit
from .wsclient import open_ws

LIBRARIES = ("wsmanager", "websockets", "uvicorn", "channels", "django", "asgiref")


def serve(app: str, port: int, folder: str) -> None:
    """The child: uvicorn with tracemalloc; each SIGUSR1 writes the next snapshot."""
    tracemalloc.start(12)
    import uvicorn

    taken = [0]

    def snapshot(*_: object) -> None:
        gc.collect()
        path = Path(folder) / f"snap{taken[0]}.bin"
        tracemalloc.take_snapshot().dump(str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)
        taken[0] += 1

    signal.signal(signal.SIGUSR1, snapshot)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


def library(filename: str) -> str | None:
    """The library a source file belongs to (``uvicorn/protocols/websockets/`` is uvicorn's)."""
    for name in LIBRARIES:
        if f"site-packages/{name}/" in filename:
            return name
    return "wsmanager" if f"{ROOT}/wsmanager/" in filename else None


def breakdown(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, sockets: int) -> dict[str, Any]:
    by_library: collections.Counter[str] = collections.Counter()
    by_file: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    total = 0
    for stat in after.compare_to(before, "traceback"):
        frames = list(stat.traceback)  # oldest first
        total += stat.size_diff
        owner = next((lib for f in reversed(frames) if (lib := library(f.filename))), "other")
        by_library[owner] += stat.size_diff
        by_file[library(frames[-1].filename) or Path(frames[-1].filename).name] += stat.size_diff
        mine = [f for f in frames if library(f.filename) == "wsmanager"]
        if mine:
            where = mine[-1].filename.split(f"{ROOT}/wsmanager/", 1)[-1]
            ours[f"wsmanager/{where}:{mine[-1].lineno}"] += stat.size_diff

    def kib(counter: collections.Counter[str], top: int) -> dict[str, float]:
        return {k: round(v / sockets / 1024, 2) for k, v in counter.most_common(top) if v > 0}

    return {
        "sockets": sockets,
        "kib_per_socket": round(total / sockets / 1024, 2),
        "by_innermost_library": kib(by_library, 10),
        "by_allocating_file": kib(by_file, 10),
        "wsmanager_lines": {k: round(v / sockets) for k, v in ours.most_common(12) if v > 0},  # bytes
    }


async def load(pid: int, port: int, path: str, sockets: int, folder: Path) -> None:
    async def snapshot(n: int) -> None:
        os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + 600
        while not (folder / f"snap{n}.bin").exists():
            assert time.monotonic() < deadline, "the server took no snapshot"
            await asyncio.sleep(0.2)

    conns = [await open_ws("127.0.0.1", port, path) for _ in range(20)]
    await asyncio.sleep(1.0)  # the warm-up's own work ends (a snapshot is only memory, not time)
    await snapshot(0)
    for start in range(0, sockets, 50):
        batch = min(50, sockets - start)
        conns += await asyncio.gather(*(open_ws("127.0.0.1", port, path) for _ in range(batch)))
    await asyncio.sleep(1.0)
    await snapshot(1)
    for conn in conns:
        conn.abort()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--app", default="bench.apps.wsm:application")
    parser.add_argument("--path", default="/ws/rpc/")
    parser.add_argument("--serve", nargs=3, metavar=("APP", "PORT", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return
    raise_fd_limit()
    folder = Path(tempfile.mkdtemp(prefix="idle-memory-"))
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bench.idle_memory", "--serve", args.app, str(port), str(folder)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        wait_for_port(port, proc=proc, timeout=300)
        asyncio.run(load(proc.pid, port, args.path, args.sockets, folder))
        before = tracemalloc.Snapshot.load(str(folder / "snap0.bin"))
        after = tracemalloc.Snapshot.load(str(folder / "snap1.bin"))
        print(json.dumps({"app": args.app, **breakdown(before, after, args.sockets)}, indent=2))
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
