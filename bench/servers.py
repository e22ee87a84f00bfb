"""Real server processes for the benchmark, one (or two, on Redis) per system.

Built on :class:`tests.servers.ServerProcess` (daphne unless a system names
another server), with the bench settings and a key prefix unique to the run.
Also: RSS of a process, the file-descriptor limit, and clean-up of the run's
Redis keys.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import resource
import secrets
import time
from collections.abc import Iterable
from pathlib import Path

from tests.servers import ServerProcess, server_process

__all__ = [
    "Servers",
    "cpu_ticks",
    "new_prefix",
    "raise_fd_limit",
    "redis_cleanup",
    "redis_problem",
    "rss_kib",
    "wait_quiet",
]

# Bursts of handshakes on 2 shared cores can outlast daphne's 5 s default.
DAPHNE_ARGS = ("--websocket_connect_timeout", "60", "-v", "0")


def new_prefix() -> str:
    return f"bench-{secrets.token_hex(4)}"


def raise_fd_limit() -> int:
    """Raise this process's (and so its children's) open-file limit to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (VmRSS from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def redis_problem(url: str) -> str | None:
    """Why Redis at ``url`` cannot be used, or None when it answers PING."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed"
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"Redis not reachable at {url}: {exc}"
    finally:
        client.close()
    return None


def redis_cleanup(url: str, prefix: str) -> int:
    """Delete every key of the run (``prefix:*``, and ``{prefix...}:*``: the registries'
    keys, their prefix in braces); how many."""
    import redis

    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for pattern in (f"{prefix}:*", f"{{{prefix}*"):
            for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += int(client.unlink(*batch))
                    batch.clear()
        if batch:
            deleted += int(client.unlink(*batch))
    finally:
        client.close()
    return deleted


class Servers:
    """``count`` daphne processes for each of ``systems`` ({key: ASGI app}), started together.

    ``redis_url`` empty: in-memory layer, registry and cache (one process
    each makes sense). Use as a context manager; logs are deleted on a clean
    stop and kept (path printed) when a server failed.
    """

    def __init__(
        self,
        apps: dict[str, str | tuple[str, str] | tuple[str, str, dict[str, str]]],
        *,
        count: int = 1,
        redis_url: str = "",
        prefix: str = "bench",
    ) -> None:
        """``apps``: {key: ASGI app} served by daphne, or {key: (ASGI app, server kind)}, or
        {key: (ASGI app, server kind, environment beyond the bench's)}."""
        env = {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "BENCH_REDIS_URL": redis_url,
            "PYTHONUNBUFFERED": "1",
        }
        self.procs: dict[str, list[ServerProcess]] = {}
        for key, spec in apps.items():
            app, kind, extra = (spec, "daphne", {}) if isinstance(spec, str) else (*spec, {})[:3]
            args = DAPHNE_ARGS if kind == "daphne" else ()
            # Keys of their own per system: two wsmanager systems (two servers, metrics
            # on and off) would otherwise share rooms on Redis (still under ``prefix:``).
            own = {**env, "BENCH_PREFIX": f"{prefix}:{key}", **extra}
            self.procs[key] = [server_process(kind, env=own, app=app, extra_args=args) for _ in range(count)]

    def ports(self, key: str) -> list[int]:
        return [p.port for p in self.procs[key]]

    def pids(self, key: str) -> list[int]:
        """Every process of the system (a server's main process and its workers): their CPU counts."""
        return [pid for p in self.procs[key] for pid in p.pids()]

    def serving_pids(self, key: str) -> list[int]:
        """The process running the app, per server (the worker where there is one): its memory counts."""
        return [p.serving_pid() for p in self.procs[key]]

    def _all(self) -> Iterable[ServerProcess]:
        for procs in self.procs.values():
            yield from procs

    def start(self) -> Servers:
        everything = list(self._all())
        with concurrent.futures.ThreadPoolExecutor(len(everything)) as pool:
            failures = [f.exception() for f in [pool.submit(p.start) for p in everything]]
        errors = [exc for exc in failures if exc is not None]
        if errors:
            self.stop(keep_logs=True)
            raise RuntimeError(f"a server process did not start: {errors[0]}")
        return self

    def check_alive(self) -> None:
        for proc in self._all():
            if proc.proc is None or proc.proc.poll() is not None:
                raise RuntimeError(f"{proc.kind} {proc.app} died; log:\n{proc.log_tail()}")

    def stop(self, keep_logs: bool = False) -> None:
        everything = list(self._all())
        with concurrent.futures.ThreadPoolExecutor(max(1, len(everything))) as pool:
            list(pool.map(lambda p: p.stop(timeout=15), everything))
        for proc in everything:
            if keep_logs:
                print(f"  {proc.kind} log kept: {proc.log_path}")
            else:
                proc.log_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL every process (fast; used after the connections scenario)."""
        for proc in self._all():
            proc.kill()
            proc.log_path.unlink(missing_ok=True)

    def __enter__(self) -> Servers:
        return self.start()

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.stop(keep_logs=exc_type is not None)


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of a process, in clock ticks (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


async def wait_quiet(pids: Iterable[int], timeout: float = 15.0, poll: float = 0.1) -> bool:
    """Wait until the processes stop using CPU (two quiet polls in a row); False on timeout."""
    pids = list(pids)
    deadline = time.monotonic() + timeout
    last = [cpu_ticks(p) for p in pids]
    quiet = 0
    while time.monotonic() < deadline:
        await asyncio.sleep(poll)
        now = [cpu_ticks(p) for p in pids]
        busy = max((b - a for a, b in zip(last, now, strict=True)), default=0)
        last = now
        quiet = quiet + 1 if busy <= 1 else 0
        if quiet >= 2:
            return True
    return False
