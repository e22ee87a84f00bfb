"""What a send by id, a presence change and a broadcast cost Redis, per operation (issue 24's plan).

``python -m bench.scale_costs [--members 100 2000] [--processes 2] [--sends 200]
[--broadcasts 50] [--cycles 40] [--idle 0]``

Runs the demo under ``--processes`` daphne processes on a **private**
``redis-server`` (started for the run, as :mod:`bench.topics_cost` does, whose
pieces this reuses), ``--members`` sockets in one chat room
(``/ws/chat/scale/``) split evenly over the processes. This process has no
sockets: it acts as a worker or an HTTP view of another process would, so
every operation below crosses processes.

Per operation, for each ``--members`` count, Redis's own counters (``INFO``:
commands processed, network bytes in and out, calls per command, CPU
user + system) and the daphne processes' CPU (``/proc``, all processes
together), read before and after ``--sends``/``--broadcasts``/``--cycles``
operations, once every socket that should have a frame has it; the same
counters over an idle period as long are subtracted:

* **send**: ``ChatHandler.manager.anotify(id, "message", ...)`` to one member,
  the members taken in turn (so over every process).
* **broadcast**: ``anotify_group`` of the same ``message`` to the room.
* **presence cycle**: one more socket connects to the room (a registry
  write, the join, the room's ``joined`` announcement to every member) and
  then closes cleanly (the release, the room's ``left`` announcement); one
  cycle is two presence changes. The newcomers take the processes in turn.

The servers' resident memory (VmRSS) is read before and after the room opens.
Counters only, no wall-clock timing is a result. ``WSMANAGER_HEARTBEAT``
defaults to 900 here: each heartbeat uploads every socket's last activity
(bytes that grow with the sockets), and none should fall in a measured or an
idle period. Prints JSON; docs/benchmarks.md and docs/scaling.md have the
figures of a run.

``--idle S`` (with, say, ``WSMANAGER_HEARTBEAT=2`` and the operations set to
0) measures S seconds with no operation first: what the heartbeats cost per
second and per socket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .servers import cpu_ticks, rss_kib
from .topics_cost import Counters, delta, demo_processes
from .wsclient import WsConn, open_ws

ROOM = "scale"
PATH = f"/ws/chat/{ROOM}/"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TEXT = "a chat message of about the usual length, with some words"


def method_of(text: str) -> str:
    """The ``method`` of a notification frame (``""`` for anything else), from its head."""
    head = text[:60]
    start = head.find('"method":"')
    if start < 0:
        return ""
    start += len('"method":"')
    return head[start : head.find('"', start)]


class Room:
    """``count`` sockets in the room over ``ports``, counting the frames they get, per method."""

    def __init__(self) -> None:
        self.conns: list[WsConn] = []
        self.ids: list[str] = []
        self.got: dict[str, int] = {}
        self.want: tuple[str, int] = ("", 0)
        self.done: asyncio.Future[None] | None = None

    def _count(self, text: str) -> None:
        method = method_of(text)
        self.got[method] = self.got.get(method, 0) + 1
        wanted, enough = self.want
        done = self.done
        if method == wanted and self.got[method] >= enough and done is not None and not done.done():
            done.set_result(None)

    async def open(self, ports: list[int], count: int) -> None:
        for start in range(0, count, 25):
            batch = await asyncio.gather(
                *(
                    open_ws("127.0.0.1", ports[(start + j) % len(ports)], PATH)
                    for j in range(min(25, count - start))
                )
            )
            for conn in batch:
                connected = json.loads(await asyncio.wait_for(conn.recv(), 60))
                assert connected.get("method") == "rpc.connected", connected
                self.ids.append(connected["params"]["id"])
                conn.on_text = self._count
            self.conns += batch

    def expect(self, method: str, frames: int) -> asyncio.Future[None]:
        self.got[method] = 0
        self.want = (method, frames)
        self.done = asyncio.get_running_loop().create_future()
        if frames == 0:
            self.done.set_result(None)
        return self.done

    async def settle(self) -> None:
        """Until no frame arrived for a second (the opening's presence bursts are over)."""
        while True:
            before = sum(self.got.values())
            await asyncio.sleep(1.0)
            if sum(self.got.values()) == before:
                return

    def close(self) -> None:
        for conn in self.conns:
            conn.abort()


async def per_op(
    counters: Counters, pids: list[int], ops: int, run: Callable[[int], Awaitable[None]]
) -> dict[str, Any]:
    """Redis's counters and the servers' CPU per operation, an idle period as long subtracted."""

    def ticks() -> int:
        return sum(cpu_ticks(pid) for pid in pids)

    before, ticks_before = counters.read(), ticks()
    started = time.monotonic()
    for i in range(ops):
        await run(i)
    took = time.monotonic() - started
    busy, busy_ticks = delta(counters.read(), before), ticks() - ticks_before
    idle_before, idle_ticks_before = counters.read(), ticks()
    await asyncio.sleep(took)
    idle, idle_ticks = delta(counters.read(), idle_before), ticks() - idle_ticks_before
    net = {key: busy[key] - idle.get(key, 0) for key in busy}
    per = {key: round(value / ops, 2) for key, value in net.items() if value > 0}
    calls = {k.removeprefix("cmd:"): v for k, v in per.items() if k.startswith("cmd:") and k != "cmd:info"}
    return {
        "ops": ops,
        "commands": per.get("commands", 0.0),
        "bytes_in": per.get("bytes_in", 0.0),
        "bytes_out": per.get("bytes_out", 0.0),
        "redis_cpu_us": per.get("cpu_us", 0.0),
        "servers_cpu_ms": round((busy_ticks - idle_ticks) / CLOCK_TICKS * 1000 / ops, 2),
        "calls": dict(sorted(calls.items(), key=lambda kv: -kv[1])),
        "idle_commands_per_s": round(idle.get("commands", 0) / took, 1),
    }


async def idle(counters: Counters, pids: list[int], members: int, seconds: float) -> dict[str, Any]:
    """Redis's counters and the servers' CPU over ``seconds`` with no operation: heartbeats
    (each uploads its process's sockets' last activity) and the layer's blocking reads."""
    before, ticks = counters.read(), sum(cpu_ticks(pid) for pid in pids)
    await asyncio.sleep(seconds)
    spent = delta(counters.read(), before)
    cpu_ms = (sum(cpu_ticks(pid) for pid in pids) - ticks) / CLOCK_TICKS * 1000
    calls = {k.removeprefix("cmd:"): v for k, v in spent.items() if k.startswith("cmd:") and v > 0}
    return {
        "seconds": seconds,
        "per_second": {
            "commands": round(spent["commands"] / seconds, 1),
            "bytes_in": round(spent["bytes_in"] / seconds),
            "bytes_out": round(spent["bytes_out"] / seconds),
            "redis_cpu_us": round(spent["cpu_us"] / seconds),
            "servers_cpu_ms": round(cpu_ms / seconds, 2),
        },
        "bytes_in_per_socket_and_second": round(spent["bytes_in"] / seconds / max(members, 1), 2),
        "calls": dict(sorted(calls.items(), key=lambda kv: -kv[1])),
    }


async def measure(
    ports: list[int], pids: list[int], counters: Counters, manager: Any, group: str, members: int, args: Any
) -> dict[str, Any]:
    room = Room()
    rss_before = [rss_kib(pid) for pid in pids]
    await room.open(ports, members)
    try:
        await room.settle()
        rss_after = [rss_kib(pid) for pid in pids]

        async def send(i: int) -> None:
            done = room.expect("message", 1)
            target = room.ids[i % len(room.ids)]
            await manager.anotify(
                target, "message", **{"from": None, "name": None, "room": ROOM, "text": TEXT}
            )
            await asyncio.wait_for(done, 60)

        async def broadcast(i: int) -> None:
            done = room.expect("message", members)
            await manager.anotify_group(
                group, "message", **{"from": None, "name": None, "room": ROOM, "text": TEXT}
            )
            await asyncio.wait_for(done, 120)

        async def cycle(i: int) -> None:
            joined = room.expect("joined", members)
            conn = await open_ws("127.0.0.1", ports[i % len(ports)], PATH)
            await asyncio.wait_for(conn.recv(), 60)  # rpc.connected
            await asyncio.wait_for(joined, 60)
            left = room.expect("left", members)
            conn.close()
            await asyncio.wait_for(conn.closed, 60)
            await asyncio.wait_for(left, 60)

        out: dict[str, Any] = {
            "members": members,
            # The servers' resident memory before and after the room opened (VmRSS, KiB); only
            # the first --members count starts from fresh processes (freed memory stays resident).
            "rss_kib": {"before": rss_before, "after": rss_after},
            "rss_kib_per_socket": round((sum(rss_after) - sum(rss_before)) / max(members, 1), 1),
        }
        if args.idle > 0:
            out["idle"] = await idle(counters, pids, members, args.idle)
        if args.sends:
            out["send"] = await per_op(counters, pids, args.sends, send)
        if args.broadcasts:
            out["broadcast"] = await per_op(counters, pids, args.broadcasts, broadcast)
        if args.cycles:
            out["presence_cycle"] = await per_op(counters, pids, args.cycles, cycle)
        out["frames_seen"] = dict(room.got)
        return out
    finally:
        room.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--sends", type=int, default=200)
    parser.add_argument("--broadcasts", type=int, default=50)
    parser.add_argument("--cycles", type=int, default=40, help="presence cycles (a join and a leave each)")
    parser.add_argument(
        "--idle",
        type=float,
        default=0,
        help="seconds of no operation measured first (0: none); with a short WSMANAGER_HEARTBEAT, "
        "what the heartbeats' uploads cost",
    )
    args = parser.parse_args()
    # No heartbeat in a measured or idle period (see the module's docstring).
    with demo_processes(args.processes, "900", "scale") as (url, servers):
        from demo_chat.handlers import ChatHandler, room_group

        ports = [s.port for s in servers]
        pids = [s.proc.pid for s in servers if s.proc is not None]
        counters = Counters(url)

        async def run() -> dict[str, Any]:
            out: dict[str, Any] = {"processes": len(ports), "runs": []}
            for members in args.members:
                out["runs"].append(
                    await measure(ports, pids, counters, ChatHandler.manager, room_group(ROOM), members, args)
                )
            return out

        print(json.dumps(asyncio.run(run()), indent=2))


if __name__ == "__main__":
    main()
