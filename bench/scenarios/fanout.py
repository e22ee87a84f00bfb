"""Fan-out: listeners in one room, one sender, rounds of one message each.

A round ends when every listener has its message; the next starts then. The
measured rounds go on until they add up to the run's window (``--seconds``),
and are at least ``--rounds``: a rate over a fixed window whatever the size
of the room or the speed of the system.
Warm-up rounds decode every frame fully; measured rounds read the round
number only. A listener that misses a first broadcast is reported and
reopened (a correctness problem of the system under test, see
docs/benchmarks.md), so that the measurement can go on.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..results import percentile
from ..servers import Servers, wait_quiet
from ..systems import System
from ..wsclient import WsConn
from .base import BenchError, Case, Config, abort_all, ms, open_many, payload

__all__ = ["Fanout"]

ROUND_TIMEOUT = 60.0
PROBE_TIMEOUT = 10.0  # a first broadcast that long unanswered means a listener is not in the room


@dataclass
class _Room:
    sender: WsConn
    listeners: list[WsConn]


class _Round:
    """Counts a round's arrivals; ``done`` resolves when every listener has it."""

    def __init__(self, listeners: int) -> None:
        self.number = -1
        self.text = ""
        self.remaining = 0
        self.last = 0.0
        self.seen = [-1] * listeners
        self.errors: list[str] = []
        self.done: asyncio.Future[None] | None = None

    def start(self, number: int, text: str) -> asyncio.Future[None]:
        self.number, self.text, self.remaining = number, text, len(self.seen)
        self.done = asyncio.get_running_loop().create_future()
        return self.done

    def arrived(self, index: int, number: int) -> None:
        if number != self.number or self.seen[index] == number:
            self.errors.append(f"listener {index} got round {number} during round {self.number}")
            return
        self.seen[index] = number
        self.remaining -= 1
        if self.remaining == 0:
            self.last = time.perf_counter()
            if self.done is not None and not self.done.done():
                self.done.set_result(None)


_round_numbers = itertools.cycle(range(1, 1_000_000))  # six digits in the payload


class Fanout(Case):
    scenario = "fan-out"

    def __init__(self, listeners: int, mode: str, config: Config) -> None:
        where = "1 proc" if mode == "memory" else "Redis, 2 procs"
        super().__init__(f"{listeners} listeners, {where}")
        self.mode = mode
        self.listeners = listeners
        self.config = config
        self.room = f"r{listeners}{mode}"
        target = 3.7 if mode == "memory" else 2.0
        self.rows = [
            self.row("deliveries/s", True, target),
            self.row("round p50 ms", False),
            self.row("round p99 ms", False),
        ]

    async def open(self, system: System, servers: Servers) -> _Room:
        ports = servers.ports(system.key)
        port_of = [ports[i % len(ports)] for i in range(self.listeners)]
        listeners = await open_many(
            [self._opener(system, port) for port in port_of], self.config.connect_window
        )
        room = _Room(await system.open_room(ports[0], self.room, False), listeners)
        await wait_quiet(servers.pids(system.key))
        # Every listener must be in the room before anything is measured. One
        # that misses a first broadcast is reported (a correctness problem of
        # the system) and reopened, so that the measurement can go on.
        for _ in range(3):
            missing = await self._probe(system, room)
            if not missing:
                return room
            self.notes.append(
                f"{system.label}: {len(missing)} of {self.listeners} listeners, connected and "
                f"accepted, missed a broadcast ({self.label}); reopened them"
            )
            print(f"  WARNING {self.notes[-1]}", flush=True)
            for index in missing:
                room.listeners[index].abort()
            reopened = await open_many(
                [self._opener(system, port_of[i]) for i in missing], self.config.connect_window
            )
            for index, conn in zip(missing, reopened, strict=True):
                room.listeners[index] = conn
            await wait_quiet(servers.pids(system.key))
        raise BenchError(f"listeners keep missing broadcasts in {self.label}")

    def _opener(self, system: System, port: int) -> Callable[[], Awaitable[WsConn]]:
        return lambda: system.open_room(port, self.room, True)

    async def _probe(self, system: System, room: _Room) -> list[int]:
        """Broadcast once; the listeners that did not get it within PROBE_TIMEOUT."""
        tracker = _Round(len(room.listeners))
        for index, conn in enumerate(room.listeners):
            conn.on_text = self._callback(system, tracker, index, validate=True)
        number = next(_round_numbers)
        text = payload(f"#r{number:06d}#")
        done = tracker.start(number, text)
        room.sender.send_text(system.broadcast_request(text))
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await done
        except TimeoutError:
            pass
        finally:
            for conn in room.listeners:
                conn.on_text = None
        if tracker.errors:
            raise BenchError(tracker.errors[0])
        return [i for i, seen in enumerate(tracker.seen) if seen != number]

    async def _rounds(
        self, system: System, room: _Room, rounds: int, validate: bool, seconds: float = 0.0
    ) -> list[float]:
        """At least ``rounds`` rounds, and more until they add up to ``seconds``; each one's time."""
        tracker = _Round(len(room.listeners))
        for index, conn in enumerate(room.listeners):
            conn.on_text = self._callback(system, tracker, index, validate)
        times: list[float] = []
        spent = 0.0
        try:
            while len(times) < rounds or spent < seconds:
                number = next(_round_numbers)
                text = payload(f"#r{number:06d}#")
                done = tracker.start(number, text)
                request = system.broadcast_request(text)
                t0 = time.perf_counter()
                room.sender.send_text(request)
                try:
                    async with asyncio.timeout(ROUND_TIMEOUT):
                        await done
                except TimeoutError:
                    raise BenchError(
                        f"round {number}: {tracker.remaining} of {len(room.listeners)} "
                        f"listeners had nothing after {ROUND_TIMEOUT}s"
                    ) from None
                if tracker.errors:
                    raise BenchError(tracker.errors[0])
                times.append(tracker.last - t0)
                spent += times[-1]
        finally:
            for conn in room.listeners:
                conn.on_text = None
        return times

    @staticmethod
    def _callback(system: System, tracker: _Round, index: int, validate: bool) -> Callable[[str], None]:
        if validate:  # warm-up rounds: decode every frame fully and compare

            def on_text(text: str) -> None:
                got = system.group_payload(text)
                if got is None:  # not a round's frame (the demo's presence): ignored
                    return
                if got != tracker.text:
                    tracker.errors.append(f"listener {index} got {text[:120]!r}")
                    return
                tracker.arrived(index, int(got[2:8]))

            return on_text

        def on_text_fast(text: str) -> None:  # measured rounds: find the round marker
            at = text.find("#r")
            if at >= 0:  # else not a round's frame (the demo's presence)
                tracker.arrived(index, int(text[at + 2 : at + 8]))

        return on_text_fast

    async def run(self, system: System, room: _Room, servers: Servers) -> dict[str, float]:
        warm = await self._rounds(system, room, self.config.warmup_rounds, validate=True)
        times = await self._rounds(system, room, self.config.rounds, False, self.config.seconds)
        return {
            "_messages": len(room.listeners) * (len(warm) + len(times)),
            "deliveries/s": len(room.listeners) * len(times) / sum(times),
            "round p50 ms": ms(percentile(times, 50)),
            "round p99 ms": ms(percentile(times, 99)),
        }

    async def close(self, room: _Room, servers: Servers) -> None:
        abort_all([room.sender, *room.listeners])
        await wait_quiet(pid for key in servers.procs for pid in servers.pids(key))
