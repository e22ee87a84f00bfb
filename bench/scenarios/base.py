"""What every scenario shares: sizes (:class:`Config`), the :class:`Case`
protocol the runner drives, and helpers to open many sockets at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..results import Row
from ..servers import Servers
from ..systems import System
from ..wsclient import WsConn

__all__ = [
    "FULL",
    "PAYLOAD_SIZE",
    "QUICK",
    "BenchError",
    "Case",
    "Config",
    "abort_all",
    "ms",
    "open_many",
    "payload",
]

PAYLOAD_SIZE = 64
OPEN_TIMEOUT = 120.0  # opening a few thousand sockets on 2 busy cores


class BenchError(Exception):
    """A server answered wrongly or not at all."""


@dataclass(frozen=True)
class Config:
    """Sizes and durations of one benchmark run."""

    repeat: int = 3
    seconds: float = 2.0  # measured window of echo, RPC, send by id and fan-out
    warmup: int = 20  # round trips per socket before each measured window
    echo_conns: tuple[int, ...] = (1, 10, 100)
    rpc_conns: int = 10
    fanout_sizes: tuple[int, ...] = (300, 1000)
    rounds: int = 20  # fan-out: at least, however long they take
    warmup_rounds: int = 2
    direct_workers: int = 4
    connections: int = 5000
    connect_window: int = 50  # handshakes in flight at once (daphne's listen backlog is 50)


FULL = Config()
QUICK = Config(
    repeat=1,
    seconds=0.3,
    warmup=3,
    echo_conns=(1, 4),
    rpc_conns=2,
    fanout_sizes=(20,),
    rounds=2,
    warmup_rounds=1,
    direct_workers=2,
    connections=200,
)


def payload(marker: str) -> str:
    return marker.ljust(PAYLOAD_SIZE, "x")


def ms(seconds: float) -> float:
    return seconds * 1000.0


async def open_many(
    factories: Sequence[Callable[[], Awaitable[Any]]], window: int, timeout: float = OPEN_TIMEOUT
) -> list[Any]:
    """Run the openers with at most ``window`` in flight; results in order."""
    gate = asyncio.Semaphore(window)

    async def one(factory: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await factory()

    async with asyncio.timeout(timeout):
        results = await asyncio.gather(*(one(f) for f in factories), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:  # close what did open, then report the first failure
        abort_all([r for r in results if isinstance(r, WsConn)])
        abort_all([r[0] for r in results if isinstance(r, tuple) and isinstance(r[0], WsConn)])
        raise failures[0]
    return list(results)


def abort_all(conns: Sequence[WsConn]) -> None:
    for conn in conns:
        conn.abort()


class Case:
    """One measured case: ``open`` per system, ``run`` per system and repeat, ``close``."""

    scenario = ""
    mode = "memory"  # or "redis": which servers the case needs

    def __init__(self, label: str) -> None:
        self.label = label
        self.rows: list[Row] = []
        #: Findings worth a line under the table (e.g. a correctness problem met on the way).
        self.notes: list[str] = []

    def row(self, metric: str, higher_is_better: bool, target: float | None = None) -> Row:
        return Row(self.scenario, self.label, metric, higher_is_better, target)

    async def open(self, system: System, servers: Servers) -> Any:
        return None

    async def run(self, system: System, state: Any, servers: Servers) -> dict[str, float]:
        raise NotImplementedError

    async def close(self, state: Any, servers: Servers) -> None:
        return None
