"""The Python client against a hostile server: what each attack costs the client.

``python -m bench.hostile_client [--attacks frame,batch,...] [--client-path DIR]``
runs, for each attack, a hostile ``websockets`` server in one process and a
``wsmanager_client.Client`` in another (on loopback), and reports the
client's peak resident memory, the most asyncio tasks it held, the longest
its event loop was blocked, its state at the end, what ``on_error`` and the
state callbacks got, and ``client.stats``. The attacks (issue 21, item 5):

* ``frame``: one text frame announced as 200 MB, streamed until the connection closes;
* ``batch``: one 44 MB batch of 1,000,000 calls, with the default options;
* ``batch-admitted``: the same with ``max_message_size`` raised to 64 MiB, so that the
  batch is parsed and refused on its length;
* ``calls``: calls without end (as fast as the server can send them) to a handler that
  never finishes, for 18 s;
* ``notifications``: the same with notifications, for 12 s.

``--client-path`` puts another copy of ``wsmanager_client`` first on the
client's ``sys.path`` (e.g. an export of an older commit's
``clients/python/src``), to measure the client before a change; options it
does not know are left out. The figures are in docs/security.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = ("frame", "batch", "batch-admitted", "calls", "notifications")
# How long each attack runs at most (the first two end sooner: the client closes, or answers).
DURATION = {"frame": 20.0, "batch": 60.0, "batch-admitted": 60.0, "calls": 18.0, "notifications": 12.0}
MiB = 1024 * 1024


# --- the hostile server (its own process) -------------------------------------------------------


def _hello() -> str:
    return json.dumps({"jsonrpc": "2.0", "method": "rpc.connected", "params": {"id": "hostile"}})


async def _serve(attack: str, port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    batch = ""
    if attack.startswith("batch"):
        calls = (f'{{"jsonrpc":"2.0","method":"add","params":[1,2],"id":{i}}}' for i in range(1_000_000))
        batch = "[" + ",".join(calls) + "]"

    async def script(ws: ServerConnection) -> None:
        await ws.send(_hello())
        await ws.recv()  # the client says it is ready (a notification "go")
        with contextlib.suppress(Exception):
            if attack == "frame":
                size = 200 * 1000 * 1000
                ws.transport.write(b"\x81\x7f" + struct.pack("!Q", size))
                chunk, sent = b" " * 65536, 0
                while sent < size and not ws.transport.is_closing():
                    ws.transport.write(chunk)
                    sent += len(chunk)
                    await ws.drain()
            elif attack.startswith("batch"):
                await ws.send(batch)
            else:
                i = 0
                while True:
                    if attack == "calls":
                        await ws.send(f'{{"jsonrpc":"2.0","method":"slow","params":[],"id":{i}}}')
                    else:
                        await ws.send('{"jsonrpc":"2.0","method":"slow","params":[]}')
                    i += 1
        await ws.wait_closed()

    async with serve(script, "127.0.0.1", port, max_size=None):
        await asyncio.Future()


# --- the measured client (its own process) ----------------------------------------------------------


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _measure(attack: str, port: int) -> dict[str, Any]:
    import dataclasses

    import wsmanager_client
    from wsmanager_client import Client, Options

    known = {f.name for f in dataclasses.fields(Options)}
    options: dict[str, Any] = {"reconnect": False, "heartbeat_interval": None}
    if attack == "batch-admitted" and "max_message_size" in known:
        options["max_message_size"] = 64 * MiB
    errors: list[str] = []
    closed: list[str] = []
    started = 0
    forever = asyncio.Event()

    async def slow() -> None:
        nonlocal started
        started += 1
        await forever.wait()

    def add(a: int, b: int) -> int:
        nonlocal started
        started += 1
        return a + b

    client = Client(
        f"ws://127.0.0.1:{port}/",
        handlers={"slow": slow, "add": add},
        on_error=lambda e: errors.append(f"{type(e).__name__}: {e}"),
        on_closed=lambda e: closed.append(
            f"Closed({e.code}, {e.reason!r}, will_reconnect={e.will_reconnect})"
        ),
        **options,
    )
    await client.connect()
    base_rss = _rss_mb()
    peak = {"rss": base_rss, "tasks": 0, "lag": 0.0}
    stop = asyncio.Event()

    async def sample() -> None:
        interval = 0.05
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(interval)
            peak["lag"] = max(peak["lag"], loop.time() - before - interval)
            peak["rss"] = max(peak["rss"], _rss_mb())
            peak["tasks"] = max(peak["tasks"], len(asyncio.all_tasks()))

    sampler = asyncio.ensure_future(sample())
    t0 = time.monotonic()
    await client.notify("go")
    deadline = t0 + DURATION[attack]
    while time.monotonic() < deadline and client.state.value != "closed":
        if attack.startswith("batch") and (errors or started >= 1_000_000):
            break  # refused, or every call of the batch ran
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - t0
    if attack.startswith("batch") and started:
        await asyncio.sleep(1.0)  # the sampler sees the answer's encoding and sending
    stop.set()
    await sampler
    stats = getattr(client, "stats", None)
    report = {
        "attack": attack,
        "client": str(Path(wsmanager_client.__file__).parent),
        "seconds": round(elapsed, 1),
        "rss_before_mb": round(base_rss, 1),
        "peak_rss_mb": round(max(peak["rss"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), 1),
        "peak_tasks": peak["tasks"],
        "max_loop_block_s": round(peak["lag"], 2),
        "handlers_started": started,
        "state": client.state.value,
        "on_error": errors[:3] + ([f"... {len(errors) - 3} more"] if len(errors) > 3 else []),
        "on_closed": closed,
        "stats": dataclasses.asdict(stats) if stats is not None else None,
    }
    forever.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), 10)
    return report


# --- the driver -----------------------------------------------------------------------------------------


def _run_one(attack: str, client_path: str | None) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.hostile_client",
            "--role",
            "server",
            "--attack",
            attack,
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_for_port(port, 120.0, server)  # building the 44 MB batch takes a few seconds
        client_env = dict(env)
        if client_path:
            client_env["PYTHONPATH"] = os.pathsep.join([client_path, str(ROOT)])
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.hostile_client",
                "--role",
                "client",
                "--attack",
                attack,
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=client_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if run.returncode != 0:
            return {"attack": attack, "failed": run.stderr[-2000:]}
        result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
        return result
    finally:
        server.kill()
        server.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hostile_client", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--attacks", default=",".join(ATTACKS), help="comma-separated, of: " + ", ".join(ATTACKS)
    )
    parser.add_argument("--client-path", default=None, help="a directory holding another wsmanager_client")
    parser.add_argument(
        "--role", choices=("driver", "server", "client"), default="driver", help=argparse.SUPPRESS
    )
    parser.add_argument("--attack", default="", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "server":
        asyncio.run(_serve(args.attack, args.port))
        return 0
    if args.role == "client":
        print(json.dumps(asyncio.run(_measure(args.attack, args.port))))
        return 0
    for attack in args.attacks.split(","):
        print(json.dumps(_run_one(attack.strip(), args.client_path)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
