"""What a topic publication costs on Redis, and how fast it fans out beside ``notify_group``.

``python -m bench.topics_cost [--subscribers 100 2000] [--publications 200] [--fanout 1000] [--processes 2]``

Runs the demo under two (``--processes``) daphne processes sharing a **private** Redis server
(``redis-server`` started on a free port for the run, so that no other
client's traffic is counted) and one SQLite file. The subscribers are
split evenly between the processes, each subscribed to the topic
``tasks`` of ``/ws/live/``. This process publishes (as a worker would:
``LiveHandler.manager.apublish``, a process with no sockets of its own).

* **Cost per publication**, for each ``--subscribers`` count: Redis's own
  counters (``INFO stats``: commands processed, network bytes in and out;
  ``INFO commandstats``: calls per command, commands run inside scripts
  included) read before and after ``--publications`` publications, once
  every subscriber has read every one; the same counters over an idle
  period as long are subtracted (heartbeats, the channel layer's blocking
  reads).
* **Cost per broadcast**, the same for ``notify_group`` to the topic's group
  (``topic:tasks``), as many calls, with the publication's method and params.
* **Fan-out speed**, at ``--fanout`` subscribers (0: skipped): ``--publications``
  publications, then as many ``notify_group`` calls to the same group
  (``topic:tasks``) with the same method and params, each batch timed
  from the first call until every subscriber read every frame; deliveries
  per second, median of ``--repeat`` runs.

Prints JSON; docs/benchmarks.md has the numbers of a run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from tests.servers import ROOT, DaphneProcess, free_port, wait_for_port

from .servers import DAPHNE_ARGS, raise_fd_limit
from .wsclient import WsConn, open_ws

PUBLICATION = '{"jsonrpc":"2.0","method":"rpc.publication"'
DATA = {"id": 123456, "title": "a task of about the usual length, with some words", "done": False}


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, 10.0, proc)
    return proc, f"redis://127.0.0.1:{port}/0"


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )


@contextlib.contextmanager
def demo_processes(processes: int, heartbeat: str, tag: str) -> Iterator[tuple[str, list[DaphneProcess]]]:
    """A private ``redis-server`` and ``processes`` daphne processes of the demo on it (one
    SQLite file, migrated), this process set up as one more of the demo's processes (a
    worker with no sockets: ``django.setup()`` done); yields Redis's URL and the servers,
    and stops everything after. ``heartbeat``: ``WSMANAGER_HEARTBEAT`` unless the
    environment sets it (each beat uploads every socket's last activity, bytes that grow
    with the sockets: a long one keeps beats out of a measured and an idle period)."""
    raise_fd_limit()
    redis_proc, url = start_redis()
    db = Path(tempfile.mkdtemp(prefix=f"{tag}-bench-")) / "db.sqlite3"
    env = {
        "REDIS_URL": url,
        "WSMANAGER_REDIS_PREFIX": "bench",
        "DEMO_DB": str(db),
        "DEMO_MAX_PER_ADDRESS": "0",
        "WSMANAGER_LOG": "WARNING",
        "DJANGO_SETTINGS_MODULE": "demo_chat.settings",
        "WSMANAGER_HEARTBEAT": os.environ.get("WSMANAGER_HEARTBEAT", heartbeat),
    }
    os.environ.update(env)
    servers: list[DaphneProcess] = []
    try:
        migrate({**os.environ})
        servers = [DaphneProcess(env=env, extra_args=DAPHNE_ARGS).start() for _ in range(processes)]
        import django

        django.setup()
        yield url, servers
    finally:
        for server in servers:
            server.stop()
        redis_proc.terminate()
        redis_proc.wait(10)


class Counters:
    """Redis's counters of the whole server (the run's own)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)

    def read(self) -> dict[str, int]:
        stats = self.client.info("stats")
        cpu = self.client.info("cpu")
        calls = {
            name.removeprefix("cmdstat_"): int(value["calls"])
            for name, value in self.client.info("commandstats").items()
        }
        return {
            "commands": int(stats["total_commands_processed"]),
            "bytes_in": int(stats["total_net_input_bytes"]),
            "bytes_out": int(stats["total_net_output_bytes"]),
            # Redis's own CPU (user + system, all its threads), in microseconds.
            "cpu_us": round((float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])) * 1e6),
            **{f"cmd:{name}": n for name, n in calls.items()},
        }


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {key: after.get(key, 0) - before.get(key, 0) for key in after}


class Subscribers:
    """``count`` sockets over ``ports``, each subscribed to ``tasks``, counting publications."""

    def __init__(self) -> None:
        self.conns: list[WsConn] = []
        self.got = 0
        self.want = 0
        self.done: asyncio.Future[None] | None = None

    def _count(self, text: str) -> None:
        if text.startswith(PUBLICATION):
            self.got += 1
            if self.got >= self.want and self.done is not None and not self.done.done():
                self.done.set_result(None)

    async def open(self, ports: list[int], count: int) -> None:
        for start in range(0, count, 25):
            batch = await asyncio.gather(
                *(
                    open_ws("127.0.0.1", ports[(start + j) % len(ports)], "/ws/live/")
                    for j in range(min(25, count - start))
                )
            )
            for conn in batch:
                await asyncio.wait_for(conn.recv(), 60)  # rpc.connected
                conn.send_text(
                    json.dumps(
                        {"jsonrpc": "2.0", "id": 1, "method": "rpc.subscribe", "params": {"topic": "tasks"}}
                    )
                )
            for conn in batch:
                answer = json.loads(await asyncio.wait_for(conn.recv(), 60))
                assert answer.get("result", {}).get("topic") == "tasks", answer
                conn.on_text = self._count
            self.conns += batch

    def expect(self, frames: int) -> asyncio.Future[None]:
        self.got, self.want = 0, frames
        self.done = asyncio.get_running_loop().create_future()
        if frames == 0:  # no subscriber: nothing to wait for
            self.done.set_result(None)
        return self.done

    def close(self) -> None:
        for conn in self.conns:
            conn.abort()


async def _per_call(counters: Counters, subs: Subscribers, calls: int, call: Any) -> dict[str, Any]:
    """Redis's counters per call of ``call(i)``, ``calls`` times, once every subscriber read
    every frame; the same counters over an idle period as long subtracted."""
    done = subs.expect(len(subs.conns) * calls)
    before = counters.read()
    started = time.monotonic()
    for i in range(calls):
        await call(i)
    await asyncio.wait_for(done, 600)
    took = time.monotonic() - started
    busy = delta(counters.read(), before)
    idle_before = counters.read()
    await asyncio.sleep(took)
    idle = delta(counters.read(), idle_before)
    net = {key: busy[key] - idle.get(key, 0) for key in busy}
    per = {key: round(value / calls, 2) for key, value in net.items() if value > 0}
    commands = {k.removeprefix("cmd:"): v for k, v in per.items() if k.startswith("cmd:") and k != "cmd:info"}
    return {
        "commands": per.get("commands", 0.0),
        "bytes_in": per.get("bytes_in", 0.0),
        "bytes_out": per.get("bytes_out", 0.0),
        "calls": dict(sorted(commands.items(), key=lambda kv: -kv[1])),
        "seconds": round(took, 2),
    }


async def cost(
    ports: list[int], counters: Counters, manager: Any, subscribers: int, publications: int
) -> dict[str, Any]:
    """Per publication, and per ``notify_group`` to the topic's group (a plain broadcast)."""
    subs = Subscribers()
    await subs.open(ports, subscribers)
    try:
        await asyncio.sleep(1.0)  # the subscribes' own traffic settles

        async def publish(i: int) -> None:
            await manager.apublish("tasks", "created", {**DATA, "id": i})

        async def notify(i: int) -> None:
            params = {"topic": "tasks", "offset": i, "epoch": "0123456789abcdef", "event": "created"}
            await manager.anotify_group("topic:tasks", "rpc.publication", **params, data={**DATA, "id": i})

        published = await _per_call(counters, subs, publications, publish)
        notified = await _per_call(counters, subs, publications, notify)
        return {
            "subscribers": subscribers,
            "publications": publications,
            "commands_per_publication": published["commands"],
            "bytes_in_per_publication": published["bytes_in"],
            "bytes_out_per_publication": published["bytes_out"],
            "calls_per_publication": published["calls"],
            "seconds": published["seconds"],
            "notify_group": notified,
        }
    finally:
        subs.close()


async def fanout(
    ports: list[int], manager: Any, subscribers: int, publications: int, repeat: int
) -> dict[str, Any]:
    subs = Subscribers()
    await subs.open(ports, subscribers)
    rates: dict[str, list[float]] = {"publish": [], "notify_group": []}
    try:
        await asyncio.sleep(1.0)
        for _ in range(repeat):
            for label in ("publish", "notify_group"):
                done = subs.expect(subscribers * publications)
                started = time.monotonic()
                for i in range(publications):
                    if label == "publish":
                        await manager.apublish("tasks", "created", {**DATA, "id": i})
                    else:
                        params = {
                            "topic": "tasks",
                            "offset": i,
                            "epoch": "0123456789abcdef",
                            "event": "created",
                            "data": {**DATA, "id": i},
                        }
                        await manager.anotify_group("topic:tasks", "rpc.publication", **params)
                await asyncio.wait_for(done, 300)
                rates[label].append(subscribers * publications / (time.monotonic() - started))
    finally:
        subs.close()
    publish, notify = statistics.median(rates["publish"]), statistics.median(rates["notify_group"])
    return {
        "subscribers": subscribers,
        "publications": publications,
        "deliveries_per_second": {"publish": round(publish), "notify_group": round(notify)},
        "ratio": round(publish / notify, 3),
        "runs": {k: [round(v) for v in vs] for k, vs in rates.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--publications", type=int, default=200)
    parser.add_argument("--fanout", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2, help="daphne processes holding the subscribers")
    args = parser.parse_args()
    # 2,000 handshakes on 2 shared cores can starve a heartbeat past the 7.5 s a node is
    # given by default (a process taken for dead has its sockets forgotten): 30 s. At 10,000
    # subscribers set WSMANAGER_HEARTBEAT=900, so that the counters show the calls alone.
    with demo_processes(args.processes, "30", "topics") as (url, servers):
        from demo_chat.live import LiveHandler

        ports = [s.port for s in servers]
        counters = Counters(url)

        async def run() -> dict[str, Any]:
            manager = LiveHandler.manager
            out: dict[str, Any] = {"processes": len(ports), "cost": []}
            for count in args.subscribers:
                out["cost"].append(await cost(ports, counters, manager, count, args.publications))
            if args.fanout > 0:
                out["fanout"] = await fanout(ports, manager, args.fanout, args.publications // 4, args.repeat)
            return out

        print(json.dumps(asyncio.run(run()), indent=2))


if __name__ == "__main__":
    main()
