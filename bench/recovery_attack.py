"""What an attacker can make connection recovery cost (issue 21), measured from outside.

``python -m bench.recovery_attack [--entries 9000] [--loops 6] [--seconds 10] [--part 1,2,3]``
runs the demo chat under daphne with a 60 s recovery window and measures, as
the issue's probe did, from one client address (127.0.0.1):

1. **Resume loops** (Redis, one process): while the sockets below are
   connected, the handler's journal takes ``--entries`` chat lines of 2,000
   characters addressed to another room (9,000: about all its 10,000 keep).
   One resume from ``wsm_offset=0-0`` after a drop: the server's CPU time,
   the bytes it read from the journal (``journal_read_bytes``) and what Redis
   sent to all its clients meanwhile (``INFO stats``, server-wide: other
   users of the Redis add to it). A resume refused as ``lost``: the same.
   Then ``--loops`` attackers drop and resume from ``0-0`` with each new
   token as fast as they can for ``--seconds``: resumes done and refused
   with 1013, the server's CPU, the bytes read, and a bystander's
   ``rpc.ping`` round trips (p50, max) meanwhile.
2. **Parked flood** (in memory, one process; Redis, two processes): 30 times,
   250 sockets opened in one room and aborted. Then the room's size as the
   registry lists it, a member's ``who()`` (time, bytes, or its error), its
   ``send`` round trip (p50 of 20), and the serving process's RSS.
3. **Races** (Redis, one process): 10 trials of two resumes of one token at
   once (does the one told ``recovered`` get a whisper sent right after?),
   then 120 races whose sockets are kept open, and how many sockets the
   address then holds open once new ones are refused (cap 256).

The figures depend on the machine and its load; run the same script on two
versions of the code to compare them (docs/security.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import django
import httpx
import redis
import websockets

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")  # the journal writer of part 1
django.setup()

from tests.servers import DaphneProcess  # noqa: E402

from .servers import (  # noqa: E402
    DAPHNE_ARGS,
    new_prefix,
    raise_fd_limit,
    redis_cleanup,
    redis_problem,
    rss_kib,
)

LINE = json.dumps({"jsonrpc": "2.0", "method": "message", "params": {"text": "x" * 2000}})
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Peer:
    """One demo chat socket speaking JSON-RPC by hand."""

    def __init__(self, ws: Any, hello: dict[str, Any]) -> None:
        self.ws, self.hello = ws, hello
        self.params: dict[str, Any] = hello.get("params", {})
        self.id: str = self.params.get("id", "")
        self._ids = 0

    @classmethod
    async def open(cls, url: str) -> Peer:
        ws = await websockets.connect(url, open_timeout=60, max_size=None)
        return cls(ws, json.loads(await asyncio.wait_for(ws.recv(), 30)))

    @property
    def token(self) -> str:
        return str(self.params["recovery"]["token"])

    async def call(self, method: str, *params: Any) -> tuple[Any, int]:
        """The call's response and its size in bytes (notifications before it are skipped)."""
        self._ids += 1
        call = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": self._ids}
        await self.ws.send(json.dumps(call))
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), 60)
            reply = json.loads(raw)
            if isinstance(reply, dict) and reply.get("id") == self._ids:
                return reply, len(raw)

    async def wait_for(self, check: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
        with contextlib.suppress(TimeoutError, websockets.ConnectionClosed):
            async with asyncio.timeout(timeout):
                while True:
                    if check(json.loads(await self.ws.recv())):
                        return True
        return False

    def abort(self) -> None:
        self.ws.transport.abort()


def url(server: DaphneProcess, room: str, **query: str) -> str:
    return f"{server.ws_url}/ws/chat/{room}/" + (f"?{urlencode(query)}" if query else "")


async def stats(server: DaphneProcess) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60) as client:
        body: dict[str, Any] = (await client.get(f"{server.http_url}/api/stats")).json()
    return body


async def counter(server: DaphneProcess, name: str) -> int:
    return int((await stats(server))["counters"].get(name, 0))


async def room_size(server: DaphneProcess, room: str) -> int:
    async with httpx.AsyncClient(timeout=60) as client:
        return len((await client.get(f"{server.http_url}/api/rooms/{room}/sockets")).json())


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError("a condition never held")
        await asyncio.sleep(0.05)


async def dropped(server: DaphneProcess, peer: Peer) -> None:
    """Abort ``peer`` and wait until the server has parked it."""
    before = await counter(server, "parked")
    peer.abort()

    async def parked() -> bool:
        return await counter(server, "parked") > before

    await until(parked)


def redis_out(client: redis.Redis) -> int:
    return int(client.info("stats")["total_net_output_bytes"])


def env_for(redis_url: str, prefix: str) -> dict[str, str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "demo_chat.settings",  # the demo's, not this process's
        "DEMO_DB": ":memory:",
        "WSMANAGER_LOG": "ERROR",
        "WSMANAGER_RECOVERY_WINDOW": "60",
    }
    if redis_url:
        env |= {"REDIS_URL": redis_url, "WSMANAGER_REDIS_PREFIX": prefix}
    return env


async def fill(redis_url: str, prefix: str, entries: int) -> None:
    from wsmanager.registry.redis import RedisRegistry

    registry = RedisRegistry(url=redis_url, prefix=f"{prefix}:wsm")
    journal = registry.make_journal(10_000)
    try:
        for start in range(0, entries, 200):
            n = min(200, entries - start)
            await asyncio.gather(*(journal.append("chat", "group", ("room.noise",), LINE) for _ in range(n)))
    finally:
        await registry.close()


async def trim_one_after(redis_url: str, prefix: str, room: str) -> None:
    """Journal one notification to ``room`` and trim it: the room's parked sockets lost it."""
    from wsmanager.registry._journal import key_of
    from wsmanager.registry.redis import RedisRegistry

    registry = RedisRegistry(url=redis_url, prefix=f"{prefix}:wsm")
    journal = registry.make_journal(10_000)
    try:
        missed = await journal.append("chat", "group", (f"room.{room}",), LINE)
        await journal.trim("chat", key_of(missed)[0] + 1)
    finally:
        await registry.close()


# -- 1. resume loops ------------------------------------------------------------------------------
async def one_resume(server: DaphneProcess, rclient: redis.Redis, peer: Peer, room: str) -> tuple[Peer, str]:
    pid = server.serving_pid()
    await dropped(server, peer)
    cpu, read, out = cpu_seconds(pid), await counter(server, "journal_read_bytes"), redis_out(rclient)
    back = await Peer.open(url(server, room, wsm_resume=peer.token, wsm_offset="0-0"))
    cpu, out = cpu_seconds(pid) - cpu, redis_out(rclient) - out
    read = await counter(server, "journal_read_bytes") - read
    outcome = "recovered" if back.params.get("recovered") else back.params.get("recovery_failed", "?")
    line = (
        f"{outcome}: server CPU {cpu * 1000:.0f} ms, journal read {read / 1e6:.2f} MB, "
        f"Redis sent {out / 1e6:.2f} MB"
    )
    return back, line


async def loops(server: DaphneProcess, rclient: redis.Redis, attackers: list[Peer], seconds: float) -> None:
    pid, n = server.serving_pid(), len(attackers)
    bystander = await Peer.open(url(server, "bystander"))
    counts = {"recovered": 0, "failed": 0, "1013": 0}
    stop = time.monotonic() + seconds

    async def attack(i: int) -> None:
        peer = attackers[i]
        while time.monotonic() < stop:
            peer.abort()
            try:
                back = await Peer.open(url(server, f"loop{i}", wsm_resume=peer.token, wsm_offset="0-0"))
            except websockets.ConnectionClosed as closed:
                counts["1013" if closed.rcvd and closed.rcvd.code == 1013 else "failed"] += 1
                await asyncio.sleep(0.05)
                continue
            counts["recovered" if back.params.get("recovered") else "failed"] += 1
            peer = back

    pings: list[float] = []

    async def ping() -> None:
        while time.monotonic() < stop:
            start = time.perf_counter()
            await bystander.call("rpc.ping")
            pings.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.02)

    cpu, read, out = cpu_seconds(pid), await counter(server, "journal_read_bytes"), redis_out(rclient)
    began = time.monotonic()
    await asyncio.gather(ping(), *(attack(i) for i in range(n)))
    took = time.monotonic() - began
    cpu, out = cpu_seconds(pid) - cpu, redis_out(rclient) - out
    read = await counter(server, "journal_read_bytes") - read
    print(
        f"  {n} loops for {took:.1f} s: {counts['recovered']} resumed, {counts['1013']} told 1013, "
        f"{counts['failed']} failed otherwise; server CPU {cpu / took * 100:.0f}%, journal read "
        f"{read / 1e6:.1f} MB, Redis sent {out / 1e6:.1f} MB; bystander rpc.ping p50 "
        f"{statistics.median(pings):.1f} ms, max {max(pings):.1f} ms ({len(pings)} pings)"
    )


async def part_resumes(redis_url: str, entries: int, n: int, seconds: float) -> None:
    prefix = new_prefix()
    rclient = redis.Redis.from_url(redis_url)
    server = DaphneProcess(env=env_for(redis_url, prefix), extra_args=DAPHNE_ARGS)
    try:
        server.start()
        peer = await Peer.open(url(server, "victim"))
        attackers = [await Peer.open(url(server, f"loop{i}")) for i in range(n)]
        await fill(redis_url, prefix, entries)  # while they are connected
        print(f"1. resume loops (Redis, one daphne process, journal of {entries} x 2,000-character lines)")
        for attempt in range(3):
            peer, line = await one_resume(server, rclient, peer, "victim")
            print(f"  resume {attempt + 1} from 0-0 after a drop, {line}")
        await loops(server, rclient, attackers, seconds)
        lost = await Peer.open(url(server, "lost"))
        await dropped(server, lost)
        await trim_one_after(redis_url, prefix, "lost")
        await fill(redis_url, prefix, 2000)  # after the trim (it took every older entry too)
        pid = server.serving_pid()
        cpu, read, out = cpu_seconds(pid), await counter(server, "journal_read_bytes"), redis_out(rclient)
        back = await Peer.open(url(server, "lost", wsm_resume=lost.token, wsm_offset="0-0"))
        cpu, out = cpu_seconds(pid) - cpu, redis_out(rclient) - out
        read = await counter(server, "journal_read_bytes") - read
        print(
            f"  a resume refused as {back.params.get('recovery_failed')!r}: server CPU {cpu * 1000:.0f} ms, "
            f"journal read {read / 1e6:.2f} MB, Redis sent {out / 1e6:.2f} MB"
        )
    finally:
        server.stop()
        rclient.close()
        redis_cleanup(redis_url, prefix)


# -- 2. parked flood ------------------------------------------------------------------------------
async def flood(servers: list[DaphneProcess], label: str) -> None:
    server = servers[0]
    started = time.monotonic()
    for _ in range(30):
        batch: list[Peer] = []
        for _ in range(5):
            opened = await asyncio.gather(
                *(Peer.open(url(server, "flood")) for _ in range(50)), return_exceptions=True
            )
            batch += [p for p in opened if isinstance(p, Peer)]
        for peer in batch:
            peer.abort()
    took = time.monotonic() - started
    await asyncio.sleep(2.0)  # the server notices the last aborts
    member = await Peer.open(url(servers[-1], "flood"))  # joins now: the flood's presence news is over
    size = await room_size(server, "flood")
    start = time.perf_counter()
    reply, size_bytes = await member.call("who")
    who_ms = (time.perf_counter() - start) * 1000
    who = f"{len(reply['result'])} members" if "result" in reply else f"error {reply['error']['code']}"
    sends = []
    for i in range(20):
        start = time.perf_counter()
        await member.call("send", f"hello {i}")
        sends.append((time.perf_counter() - start) * 1000)
    rss = rss_kib(server.serving_pid()) / 1024
    print(
        f"  {label}: 7,500 sockets opened and aborted in {took:.0f} s; the room lists {size}; "
        f"who(): {who}, {who_ms:.0f} ms, {size_bytes / 1000:.0f} KB; "
        f"send p50 {statistics.median(sends):.1f} ms; RSS {rss:.0f} MB"
    )


async def part_flood(redis_url: str) -> None:
    print("2. parked flood (250 sockets opened and aborted, 30 times, one room, one address)")
    server = DaphneProcess(env=env_for("", ""), extra_args=DAPHNE_ARGS)
    try:
        server.start()
        await flood([server], "in memory")
    finally:
        server.stop()
    prefix = new_prefix()
    procs = [DaphneProcess(env=env_for(redis_url, prefix), extra_args=DAPHNE_ARGS) for _ in range(2)]
    try:
        for proc in procs:
            proc.start()
        await flood(procs, "on Redis (two processes)")
    finally:
        for proc in procs:
            proc.stop()
        redis_cleanup(redis_url, prefix)


# -- 3. races ------------------------------------------------------------------------------------------
async def part_races(redis_url: str) -> None:
    print("3. two resumes of one token at once (Redis, one process)")
    prefix = new_prefix()
    server = DaphneProcess(env=env_for(redis_url, prefix), extra_args=DAPHNE_ARGS)
    try:
        server.start()
        bystander = await Peer.open(url(server, "race"))
        live = 0
        for trial in range(10):
            victim = await Peer.open(url(server, "race"))
            await dropped(server, victim)
            resume = url(server, "race", wsm_resume=victim.token, wsm_offset="0-0")
            racers = await asyncio.gather(Peer.open(resume), Peer.open(resume))
            winner = next(r for r in racers if r.params.get("recovered"))
            text = f"trial {trial}"
            await bystander.call("whisper", victim.id, text)
            if await winner.wait_for(lambda m, text=text: m.get("params", {}).get("text") == text, 2.0):
                live += 1
            for racer in racers:
                await racer.ws.close()
        print(f"  the winner got the whisper sent right after in {live} of 10 trials")
        kept: list[Peer] = []
        throttled = 0
        for race in range(120):  # a room each: nobody's backlog fills with presence news
            victim = await Peer.open(url(server, f"race{race}"))
            await dropped(server, victim)
            resume = url(server, f"race{race}", wsm_resume=victim.token, wsm_offset="0-0")
            racers = await asyncio.gather(Peer.open(resume), Peer.open(resume), return_exceptions=True)
            kept += [r for r in racers if isinstance(r, Peer)]
            throttled += sum(isinstance(r, websockets.ConnectionClosed) for r in racers)
        more = 0
        with contextlib.suppress(websockets.ConnectionClosed):
            while more < 1000:
                kept.append(await Peer.open(url(server, f"more{more}")))
                more += 1
        print(
            f"  after 120 races ({throttled} racers told 1013): {len(kept) + 1} sockets open from "
            "one address once the next is refused (cap 256)"
        )
    finally:
        server.stop()
        redis_cleanup(redis_url, prefix)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=9_000)
    parser.add_argument("--loops", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--part", default="1,2,3")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    problem = redis_problem(args.redis)
    if problem:
        raise SystemExit(problem)
    raise_fd_limit()
    parts = {p.strip() for p in args.part.split(",")}
    if "1" in parts:
        await part_resumes(args.redis, args.entries, args.loops, args.seconds)
    if "2" in parts:
        await part_flood(args.redis)
    if "3" in parts:
        await part_races(args.redis)


if __name__ == "__main__":
    asyncio.run(main())
