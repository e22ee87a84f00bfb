"""Redis for tests: the server's URL, or a skip (or a failure) when it is down.

Use the ``redis_url`` fixture in any test that needs Redis: make it visible in
the test module with ``redis_url = redis_support.redis_url`` (an assignment,
which ruff does not report as an unused import) and mark the tests
``@pytest.mark.redis``.

* ``WSMANAGER_TEST_REDIS_URL`` names the server (default
  ``redis://127.0.0.1:6379/15``, a database the demo does not use).
* When the server does not answer, the tests are skipped with a one-line
  reason, unless ``WSMANAGER_REQUIRE_REDIS=1``: then they fail, so that CI
  cannot pass by skipping them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import cache
from pathlib import Path
from typing import IO, Any

import pytest
import redis
from django.test import override_settings

from tests.servers import free_port, wait_for_port
from wsmanager.registry import get_registry, reset_registry

__all__ = [
    "DEFAULT_REDIS_URL",
    "ClusterGroup",
    "SentinelGroup",
    "redis_cluster",
    "redis_problem",
    "redis_registry",
    "redis_url",
    "sentinels",
    "shared_cluster",
]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def _url() -> str:
    return os.environ.get("WSMANAGER_TEST_REDIS_URL") or DEFAULT_REDIS_URL


@cache
def redis_problem(url: str) -> str | None:
    """Why the Redis server at ``url`` cannot be used, or None when it answers PING."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"Redis not reachable at {url}: {exc}"
    finally:
        client.close()
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of a reachable Redis; skips (or fails with WSMANAGER_REQUIRE_REDIS=1) if down."""
    url = _url()
    problem = redis_problem(url)
    if problem is not None:
        if os.environ.get("WSMANAGER_REQUIRE_REDIS") == "1":
            pytest.fail(f"{problem} (WSMANAGER_REQUIRE_REDIS=1)", pytrace=False)
        pytest.skip(problem)
    return url


@asynccontextmanager
async def redis_registry(url: str, *, node_ttl: float = 0.5, heartbeat: float = 0.2) -> AsyncIterator[None]:
    """Run wsmanager on the Redis registry under a fresh key prefix, cleared afterwards."""
    options = {"url": url, "prefix": f"wsmtest-{secrets.token_hex(6)}", "node_ttl": node_ttl}
    conf = {
        "REGISTRY": {"BACKEND": "wsmanager.registry.redis.RedisRegistry", "OPTIONS": options},
        "HEARTBEAT_INTERVAL": heartbeat,
    }
    with override_settings(WSMANAGER=conf):
        reset_registry()
        try:
            yield
        finally:
            registry = get_registry()
            await registry.clear()
            await registry.close()
            reset_registry()


SERVICE = "wsmtest"


#: The service name the sentinels of :class:`SentinelGroup` monitor.
SERVICE = "wsmtest"


def redis_server_argv(port: int, *extra: str) -> list[str]:
    """The command of a throw-away ``redis-server`` on ``port``: loopback only, nothing on
    disk, and a replica's first sync at once (Redis waits 5 s by default for more replicas
    to share a diskless transfer: most of a test cluster's start-up)."""
    return [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--repl-diskless-sync-delay",
        "0",
        *extra,
    ]


class _Processes:
    """Redis processes a test started: ``procs`` by port, their logs; :meth:`stop` ends them."""

    procs: dict[int, subprocess.Popen[bytes]]
    logs: list[IO[bytes]]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()


class SentinelGroup(_Processes):
    """A primary, one replica and three sentinels (quorum 2, down after 1 s), on
    free loopback ports, keeping their files in a temporary directory.

    ``promoted()`` reads as "the replica is the primary": it holds after one
    failover (a kill or :meth:`failover`), not after a second one.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.primary_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.logs: list[IO[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def _spawn(self, port: int, args: list[str]) -> None:
        work = self.root / str(port)
        work.mkdir()
        log = (work / "log").open("ab")
        self.logs.append(log)
        self.procs[port] = subprocess.Popen(args, cwd=work, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(port, proc=self.procs[port])

    def start(self) -> SentinelGroup:
        self._spawn_server(self.primary_port)
        self._spawn_server(self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port))
        for port in self.sentinel_ports:
            conf = self.root / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.root}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            self._spawn(port, ["redis-server", str(conf), "--sentinel"])
        return self

    def _spawn_server(self, port: int, *extra: str) -> None:
        self._spawn(port, redis_server_argv(port, "--dir", str(self.root / str(port)), *extra))

    def master(self, sentinel_port: int) -> dict[str, Any]:
        with redis.Redis(port=sentinel_port, socket_timeout=2, decode_responses=True) as client:
            return dict(client.sentinel_master(SERVICE))

    def ready(self) -> bool:
        """Every sentinel knows the other two and the replica, and the replica is in sync."""
        for port in self.sentinel_ports:
            state = self.master(port)
            if int(state["num-other-sentinels"]) < 2 or int(state["num-slaves"]) < 1:
                return False
        with redis.Redis(port=self.replica_port, socket_timeout=2, decode_responses=True) as client:
            return client.info("replication").get("master_link_status") == "up"

    def promoted(self) -> bool:
        """Every sentinel names the replica as the primary, and the replica says so."""
        for port in self.sentinel_ports:
            state = self.master(port)
            if int(state["port"]) != self.replica_port or "s_down" in str(state["flags"]):
                return False
        with redis.Redis(port=self.replica_port, socket_timeout=2, decode_responses=True) as client:
            return client.info("replication").get("role") == "master"

    def demoted(self) -> bool:
        """The first primary (after :meth:`failover`) is a replica of the promoted one."""
        with redis.Redis(port=self.primary_port, socket_timeout=2, decode_responses=True) as client:
            info = client.info("replication")
        return info.get("role") == "slave" and int(info.get("master_port", 0)) == self.replica_port

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        """Poll ``predicate`` until true; the timeout only turns a hang into a failure."""
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
            time.sleep(0.05)

    def failover(self) -> None:
        """Ask a sentinel for a coordinated failover: the primary becomes a replica."""
        with redis.Redis(port=self.sentinel_ports[0], socket_timeout=2) as client:
            client.execute_command("SENTINEL", "FAILOVER", SERVICE)

    def kill_primary(self) -> None:
        proc = self.procs[self.primary_port]
        proc.kill()  # SIGKILL: no shutdown, no last replication
        proc.wait()


def _need_redis_server() -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        if os.environ.get("WSMANAGER_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server is not installed (WSMANAGER_REQUIRE_REDIS=1)", pytrace=False)
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")


@pytest.fixture
def sentinels() -> Iterator[SentinelGroup]:
    _need_redis_server()
    with tempfile.TemporaryDirectory(prefix="wsm-sentinel-") as root:
        group = SentinelGroup(Path(root))
        try:
            group.start()
            yield group
        finally:
            group.stop()


class ClusterGroup(_Processes):
    """A Redis Cluster of three primaries with one replica each (``redis-cli --cluster
    create``), on free loopback ports (client and cluster-bus ports both chosen), a
    node timeout of 1 s, files in a temporary directory.

    :meth:`kill_owner` kills the primary that serves a key's slot (SIGKILL) and
    :meth:`wait` with :meth:`healed` waits for its replica's promotion.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = [free_port() for _ in range(6)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.logs: list[IO[bytes]] = []

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL of every node (any one is enough to start)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def live_ports(self) -> list[int]:
        return [port for port, proc in self.procs.items() if proc.poll() is None]

    def start(self) -> ClusterGroup:
        for port in self.ports:
            work = self.root / str(port)
            work.mkdir()
            log = (work / "log").open("ab")
            self.logs.append(log)
            argv = redis_server_argv(
                port,
                "--dir",
                str(work),
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(free_port()),
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
            )
            self.procs[port] = subprocess.Popen(argv, cwd=work, stdout=log, stderr=subprocess.STDOUT)
        for port in self.ports:
            wait_for_port(port, proc=self.procs[port])
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait(self.healed, "the cluster is up")
        return self

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, decode_responses=True)

    def healed(self) -> bool:
        """Every live node says the cluster is ok, sees three live primaries covering
        every slot, and every live replica's link to its primary is up."""
        for port in self.live_ports():
            with self._client(port) as client:
                if client.cluster("info").get("cluster_state") != "ok":
                    return False
                nodes = client.cluster("nodes").values()
                masters = [n for n in nodes if "master" in n["flags"] and "fail" not in n["flags"]]
                if len(masters) != 3:
                    return False
                info = client.info("replication")
                if info.get("role") == "slave" and info.get("master_link_status") != "up":
                    return False
        return True

    def owner(self, key: str) -> int:
        """The port of the live primary that serves ``key``'s slot (as a live node says)."""
        port = self.live_ports()[0]
        with self._client(port) as client:
            slot = int(client.cluster("keyslot", key))
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    return int(primary[1])
        raise AssertionError(f"no primary serves {key!r}")

    def _role(self, port: int) -> str:
        with self._client(port) as client:
            return str(client.info("replication").get("role"))

    def promote_replica_of(self, port: int) -> int:
        """A manual failover (``CLUSTER FAILOVER`` on a replica of the primary at ``port``;
        nothing dies): returns the replica's port, once the cluster is whole again."""
        with self._client(port) as client:
            me = next(n for n in client.cluster("nodes").values() if "myself" in n["flags"])["node_id"]
        for other in self.live_ports():
            with self._client(other) as client:
                info = client.info("replication")
                if info.get("role") == "slave" and int(info.get("master_port", 0)) == port:
                    client.execute_command("CLUSTER", "FAILOVER")
                    self.wait(lambda port=other: self._role(port) == "master", "the replica took over")
                    self.wait(self.healed, "the cluster is whole again")
                    return other
        raise AssertionError(f"no replica of {port} ({me})")

    def kill(self, port: int) -> None:
        proc = self.procs[port]
        proc.kill()  # SIGKILL: no shutdown, no last replication
        proc.wait()

    def kill_owner(self, key: str) -> int:
        """Kill the primary serving ``key``'s slot; its port."""
        port = self.owner(key)
        self.kill(port)
        return port

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        """Poll ``predicate`` until true (errors of a node going away count as not yet)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if predicate():
                    return
            except (redis.RedisError, OSError):
                pass
            assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
            time.sleep(0.05)


@contextmanager
def cluster() -> Iterator[ClusterGroup]:
    """A fresh cluster (:class:`ClusterGroup`), stopped and removed afterwards."""
    _need_redis_server()
    with tempfile.TemporaryDirectory(prefix="wsm-cluster-") as root:
        group = ClusterGroup(Path(root))
        try:
            yield group.start()
        finally:
            group.stop()


@pytest.fixture(scope="session")
def shared_cluster() -> Iterator[ClusterGroup]:
    """One cluster for the tests of a worker that only use it (fail nothing over)."""
    with cluster() as group:
        yield group


@pytest.fixture
def redis_cluster() -> Iterator[ClusterGroup]:
    """A fresh cluster for one test (one that fails a node over)."""
    with cluster() as group:
        yield group
