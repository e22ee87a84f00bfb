"""Connections: open many sockets to a fresh server; connects/s and RSS per idle socket."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from ..servers import Servers, cpu_ticks, rss_kib, wait_quiet
from ..systems import System
from ..wsclient import WsConn
from .base import Case, Config, abort_all, open_many

__all__ = ["Connections"]


class Connections(Case):
    """Each run starts a fresh server of its own, so its memory is not someone else's."""

    scenario = "connections"

    def __init__(self, mode: str, config: Config, redis_url: str, prefix: str) -> None:
        where = "1 proc" if mode == "memory" else "Redis, 1 proc"
        super().__init__(f"{config.connections} sockets, {where}")
        self.mode = mode
        self.config = config
        self.redis_url = redis_url if mode == "redis" else ""
        self.prefix = prefix
        target = 0.9 if mode == "memory" else 0.8
        self.rows = [self.row("connects/s", True, target), self.row("KiB/conn", False, 1.0)]

    async def run(self, system: System, state: Any, servers: Servers) -> dict[str, float]:
        spec = (system.app, system.server, system.env(self.redis_url, self.prefix))
        own = Servers({system.key: spec}, redis_url=self.redis_url, prefix=self.prefix)
        await asyncio.to_thread(own.start)
        conns: list[WsConn] = []
        try:
            port, pid = own.ports(system.key)[0], own.serving_pids(system.key)[0]
            opener = [lambda: system.open_rpc(port)]
            # Warm up (lazy imports, first-use set-up), then measure from a quiet server.
            abort_all(await open_many(opener * 20, self.config.connect_window))
            await wait_quiet([pid])
            before, ticks = rss_kib(pid), cpu_ticks(pid)
            start = time.perf_counter()
            conns = await open_many(opener * self.config.connections, self.config.connect_window)
            elapsed = time.perf_counter() - start
            server_cpu = (cpu_ticks(pid) - ticks) / os.sysconf("SC_CLK_TCK") / elapsed
            await wait_quiet([pid])
            after = rss_kib(pid)
            own.check_alive()
        finally:
            own.kill()
            abort_all(conns)
        return {
            "_messages": len(conns),
            "_server_cpu": server_cpu,
            "connects/s": len(conns) / elapsed,
            "KiB/conn": (after - before) / len(conns),
        }
