"""Send by id: ``POST /send/<id>`` to a sync Django view that sends the body to
one socket, timed from the request until the socket has the frame."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass

from ..results import percentile
from ..servers import Servers
from ..systems import System
from ..wsclient import HttpConn, WsConn
from .base import BenchError, Case, Config, abort_all, ms, payload

__all__ = ["Direct"]


@dataclass
class _Targets:
    sockets: list[tuple[WsConn, str]]
    http: list[HttpConn]


class Direct(Case):
    scenario = "send by id"

    def __init__(self, mode: str, config: Config) -> None:
        where = "1 proc" if mode == "memory" else "Redis, 2 procs"
        super().__init__(f"{config.direct_workers} clients, {where}")
        self.mode = mode
        self.config = config
        self.rows = [self.row("req/s", True), self.row("p50 ms", False, 1.0), self.row("p99 ms", False)]

    async def open(self, system: System, servers: Servers) -> _Targets:
        ports = servers.ports(system.key)
        sockets = [await system.open_direct(ports[-1]) for _ in range(self.config.direct_workers)]
        return _Targets(sockets, [HttpConn("127.0.0.1", ports[0]) for _ in sockets])

    async def _requests(
        self, system: System, targets: _Targets, seconds: float | None, count: int
    ) -> tuple[list[float], float]:
        latencies: list[float] = []
        numbers = itertools.count(1)
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        deadline = start + seconds if seconds is not None else None

        async def worker(conn: WsConn, socket_id: str, http: HttpConn) -> None:
            arrival: asyncio.Future[tuple[float, str]] | None = None

            def on_text(text: str) -> None:
                if arrival is not None and not arrival.done():
                    arrival.set_result((time.perf_counter(), text))

            conn.on_text = on_text
            try:
                for _ in range(count if deadline is None else 10**9):
                    text = payload(f"#s{next(numbers):06d}#")
                    arrival = loop.create_future()
                    t0 = time.perf_counter()
                    status = await http.post(f"/send/{socket_id}", text.encode())
                    if status != 202:
                        raise BenchError(f"POST /send/{socket_id} answered {status}")
                    t1, got = await arrival
                    if system.direct_payload(got) != text:
                        raise BenchError(f"socket got {got[:120]!r}, not {text!r}")
                    latencies.append(t1 - t0)
                    if deadline is not None and t1 >= deadline:
                        return
            finally:
                conn.on_text = None

        async with asyncio.timeout((seconds or 0) + 60):
            await asyncio.gather(
                *(worker(c, i, h) for (c, i), h in zip(targets.sockets, targets.http, strict=True))
            )
        return latencies, time.perf_counter() - start

    async def run(self, system: System, targets: _Targets, servers: Servers) -> dict[str, float]:
        warm, _ = await self._requests(system, targets, None, self.config.warmup)
        lat, elapsed = await self._requests(system, targets, self.config.seconds, 0)
        return {
            "_messages": len(warm) + len(lat),
            "req/s": len(lat) / elapsed,
            "p50 ms": ms(percentile(lat, 50)),
            "p99 ms": ms(percentile(lat, 99)),
        }

    async def close(self, targets: _Targets, servers: Servers) -> None:
        for http in targets.http:
            http.close()
        abort_all([conn for conn, _ in targets.sockets])
