"""A stream of N items against N calls: ``python -m bench.streams_cost``.

``python -m bench.streams_cost [--items 100000] [--servers uvicorn daphne] [--repeat 3]``

For each server kind, one server process of the bench app (``bench.apps.wsm``,
``ws/rpc/``) and the Python client (``wsmanager_client``, as users run it),
the same ``--items`` values four ways:

* **stream, window 64**: ``async for item in client.stream("count", n)`` (the
  client's default window: it grants 32 items back at a time);
* **stream, window 1000**: the same with ``window=1000`` (the bench handler
  allows ``max_stream_credit = 1000``);
* **calls, one at a time**: ``await client.invoke("echo", ...)``, ``n`` times;
* **calls, 64 in flight**: the same calls, 64 awaited together at a time.

Each is timed from the first send until the last item or answer arrived;
server CPU is the process's user + system ticks over the same span. Prints
items (or calls) per second and server CPU µs per item, median of
``--repeat`` runs, and the ratios of the streams to the calls. The client
runs in this process, on the same 2 shared cores: the figures say what a
user's Python client sees, not the server's ceiling.

Results: docs/benchmarks.md ("Streams against calls").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.servers import server_process
from wsmanager_client import connect

from .servers import cpu_ticks, wait_quiet

WAYS = ("stream, window 64", "stream, window 1000", "calls, one at a time", "calls, 64 in flight")


async def stream(client: Any, n: int, window: int) -> None:
    expected = 0
    async for item in client.stream("count", n, window=window):
        assert item == expected, (item, expected)
        expected += 1
    assert expected == n, expected


async def calls(client: Any, n: int, in_flight: int) -> None:
    done = 0
    while done < n:
        batch = min(in_flight, n - done)
        answers = await asyncio.gather(*(client.invoke("echo", "x") for _ in range(batch)))
        assert answers == ["x"] * batch
        done += batch


async def measure(url: str, pid: int, n: int, repeat: int) -> dict[str, dict[str, float]]:
    ways: dict[str, Callable[[Any], Awaitable[None]]] = {
        WAYS[0]: lambda c: stream(c, n, 64),
        WAYS[1]: lambda c: stream(c, n, 1000),
        WAYS[2]: lambda c: calls(c, n, 1),
        WAYS[3]: lambda c: calls(c, n, 64),
    }
    rates: dict[str, list[float]] = {way: [] for way in WAYS}
    cpu: dict[str, list[float]] = {way: [] for way in WAYS}
    per_tick = 1e6 / os.sysconf("SC_CLK_TCK")
    async with connect(f"{url}/ws/rpc/", reconnect=False, recover=False) as client:
        for _ in range(repeat):
            for way, run in ways.items():
                await wait_quiet([pid])
                ticks, started = cpu_ticks(pid), time.perf_counter()
                await run(client)
                took = time.perf_counter() - started
                rates[way].append(n / took)
                cpu[way].append((cpu_ticks(pid) - ticks) * per_tick / n)
    out = {
        way: {
            "per_second": round(statistics.median(rates[way])),
            "server_cpu_us": round(statistics.median(cpu[way]), 1),
        }
        for way in WAYS
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--servers", nargs="+", default=["uvicorn", "daphne"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    env = {"DJANGO_SETTINGS_MODULE": "bench.settings", "BENCH_URLCONF": "bench.apps.wsm"}
    report: dict[str, Any] = {"items": args.items, "repeat": args.repeat, "servers": {}}
    for kind in args.servers:
        with server_process(kind, app="bench.apps.wsm:application", env=env) as server:
            assert server.proc is not None
            result = asyncio.run(measure(server.ws_url, server.proc.pid, args.items, args.repeat))
        calls_rate = result[WAYS[2]]["per_second"]
        report["servers"][kind] = {
            **result,
            "stream 64 / calls one at a time": round(result[WAYS[0]]["per_second"] / calls_rate, 1),
            "stream 64 / calls 64 in flight": round(
                result[WAYS[0]]["per_second"] / result[WAYS[3]]["per_second"], 2
            ),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
