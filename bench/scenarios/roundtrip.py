"""Echo and RPC: each socket sends one frame and awaits the answer, repeatedly.

Echo sends a 64-byte text frame (socket.io: an event the server emits back);
RPC calls ``echo(text)`` (socket.io: an event with an ack). Every answer is
compared with what was sent.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence

from ..results import percentile
from ..servers import Servers
from ..systems import System
from ..wsclient import WsConn
from .base import BenchError, Case, Config, abort_all, ms, open_many, payload

__all__ = ["Echo", "Rpc", "round_trips"]


async def round_trips(
    conns: Sequence[WsConn],
    request: Callable[[int], str],
    check: Callable[[str, int], bool],
    seconds: float | None,
    count: int,
) -> tuple[list[float], float]:
    """Each socket sends, awaits the answer, repeats: until ``seconds`` pass (or
    ``count`` round trips each when ``seconds`` is None). Latencies and elapsed time."""
    latencies: list[float] = []
    numbers = itertools.count(1)
    start = time.perf_counter()
    deadline = start + seconds if seconds is not None else None

    async def one(conn: WsConn) -> None:
        for _ in range(count if deadline is None else 10**9):
            n = next(numbers)
            t0 = time.perf_counter()
            conn.send_text(request(n))
            reply = await conn.recv()
            t1 = time.perf_counter()
            if not check(reply, n):
                raise BenchError(f"unexpected answer {reply[:120]!r}")
            latencies.append(t1 - t0)
            if deadline is not None and t1 >= deadline:
                return

    async with asyncio.timeout((seconds or 0) + 60):
        await asyncio.gather(*(one(c) for c in conns))
    return latencies, time.perf_counter() - start


class Echo(Case):
    scenario = "echo"

    def __init__(self, conns: int, config: Config) -> None:
        super().__init__(f"{conns} conn{'s' if conns > 1 else ''}")
        self.conns = conns
        self.config = config
        self.rows = [self.row("msg/s", True, 1.3), self.row("p50 ms", False), self.row("p99 ms", False)]

    async def open(self, system: System, servers: Servers) -> list[WsConn]:
        port = servers.ports(system.key)[0]
        return await open_many([lambda: system.open_echo(port)] * self.conns, self.config.connect_window)

    async def run(self, system: System, conns: list[WsConn], servers: Servers) -> dict[str, float]:
        text = payload("#echo#")
        request, expected = system.echo_request(text), system.echo_reply(text)

        def check(reply: str, n: int) -> bool:
            return reply == expected

        warm, _ = await round_trips(conns, lambda n: request, check, None, self.config.warmup)
        lat, elapsed = await round_trips(conns, lambda n: request, check, self.config.seconds, 0)
        return {
            "_messages": len(warm) + len(lat),
            "msg/s": len(lat) / elapsed,
            "p50 ms": ms(percentile(lat, 50)),
            "p99 ms": ms(percentile(lat, 99)),
        }

    async def close(self, conns: list[WsConn], servers: Servers) -> None:
        abort_all(conns)


class Rpc(Echo):
    scenario = "rpc"

    def __init__(self, conns: int, config: Config) -> None:
        super().__init__(conns, config)
        self.rows = [self.row("calls/s", True, 1.0), self.row("p50 ms", False), self.row("p99 ms", False)]

    async def open(self, system: System, servers: Servers) -> list[WsConn]:
        port = servers.ports(system.key)[0]
        return await open_many([lambda: system.open_rpc(port)] * self.conns, self.config.connect_window)

    async def run(self, system: System, conns: list[WsConn], servers: Servers) -> dict[str, float]:
        text = payload("#rpc#")

        def check(reply: str, n: int) -> bool:
            return system.rpc_result(reply) == (n, text)

        def request(n: int) -> str:
            return system.rpc_request(n, text)

        warm, _ = await round_trips(conns, request, check, None, self.config.warmup)
        lat, elapsed = await round_trips(conns, request, check, self.config.seconds, 0)
        return {
            "_messages": len(warm) + len(lat),
            "calls/s": len(lat) / elapsed,
            "p50 ms": ms(percentile(lat, 50)),
            "p99 ms": ms(percentile(lat, 99)),
        }
