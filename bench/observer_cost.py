"""``python -m bench.observer_cost``: the CPU cost per frame of the observer hooks.

The end-to-end runs (``python -m bench --metrics``) measure the whole server,
but on a shared machine their spread is larger than the hooks' cost. This
measures the hooks alone, in one process and without I/O: the writer's path
for one outgoing frame (``Writer.push`` into an idle ``Outbox``, written at
once to a ``send`` that returns at once) and the incoming frame's hook, with
no observer installed, then with ``wsmanager.ops.metrics`` installed. It prints
the best of several runs, in microseconds per frame, and the difference.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django

django.setup()

from wsmanager.connection._outbox import Outbox, frame  # noqa: E402
from wsmanager.connection._writer import Writer  # noqa: E402
from wsmanager.observe import _hub as observe  # noqa: E402
from wsmanager.ops import metrics  # noqa: E402

FRAMES = 100_000
RUNS = 7


async def _close(code: int, reason: str) -> None:
    raise AssertionError("not closed in this measurement")


async def _send(message: Any) -> None:
    return None


async def _noop() -> None:
    return None


async def outgoing() -> float:
    """Seconds per frame through ``Writer.push`` (the hook: ``frame_sent``)."""
    writer = Writer(Outbox(None, 10**9), _close, handler="bench.echo")
    writer.send = _send
    await writer.start(_noop)
    message = frame("x" * 64)
    started = time.perf_counter()
    for _ in range(FRAMES):
        writer.push(message)
    return (time.perf_counter() - started) / FRAMES


async def incoming() -> float:
    """Seconds per frame of the receive hook alone (what ``websocket_receive`` adds)."""
    name = "bench.echo"
    started = time.perf_counter()
    for _ in range(FRAMES):
        if observe.hub is not None:
            observe.hub.frame_received(name)
    return (time.perf_counter() - started) / FRAMES


async def best(measure: Any) -> float:
    return min([await measure() for _ in range(RUNS)])


async def main() -> None:
    off = {"outgoing": await best(outgoing), "incoming": await best(incoming)}
    metrics.install()
    on = {"outgoing": await best(outgoing), "incoming": await best(incoming)}
    metrics.uninstall()
    print(f"{'path':<10} {'off µs':>8} {'on µs':>8} {'added µs':>9}")
    for key in off:
        print(f"{key:<10} {off[key] * 1e6:8.3f} {on[key] * 1e6:8.3f} {(on[key] - off[key]) * 1e6:9.3f}")


if __name__ == "__main__":
    asyncio.run(main())
