"""CPU per frame of the RPC receive path, without a server: ``python -m bench.rpc_path``.

Feeds ``websocket.receive`` messages straight to an ``RpcHandler`` (rate limit
on but never refusing, ``send_frame`` a no-op) and prints the CPU time
(``time.process_time``) per frame, median and minimum of 7 runs. It isolates
what the handler's own accounting costs (decoding, the rate-limit charge,
the call queue, the answer) from daphne and the network, which dominate and
blur ``python -m bench`` on a shared machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")  # no metrics, as the bench apps
django.setup()

from wsmanager import (  # noqa: E402
    RpcHandler,
    rpc,
)
from wsmanager.handlers._handler import State  # noqa: E402


class PathBench(RpcHandler):
    handler_name = "bench.rpc_path"
    rate_limit = (1e9, 1e9)

    @rpc
    async def echo(self, value: Any = None) -> Any:
        return value


async def per_frame_us(count: int, frame: str) -> float:
    handler = PathBench()
    handler.lifecycle.move(State.OPEN)
    handler.id = "bench"
    sent = 0

    async def send_frame(data: str | bytes) -> bool:
        nonlocal sent
        sent += 1
        return True

    handler.send_frame = send_frame  # type: ignore[method-assign]
    message = {"type": "websocket.receive", "text": frame}
    start = time.process_time()
    for _ in range(count):
        await handler.websocket_receive(message)
        if handler._workers:  # the call runs in a worker task: wait for its answer
            await asyncio.wait(set(handler._workers))
    took = time.process_time() - start
    assert sent == count, sent
    return took / count * 1e6


def main() -> None:
    call = {"jsonrpc": "2.0", "method": "echo", "params": ["hello"], "id": 1}
    frames = {
        "one call": (json.dumps(call), 20_000),
        "batch of 10 calls": (json.dumps([{**call, "id": i} for i in range(10)]), 4_000),
    }
    for name, (frame, count) in frames.items():
        samples = [asyncio.run(per_frame_us(count, frame)) for _ in range(7)]
        print(f"{name}: {statistics.median(samples):.1f} us/frame median, {min(samples):.1f} min")


if __name__ == "__main__":
    main()
