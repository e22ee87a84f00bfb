"""The registry contract against Redis, plus what only the Redis backend does.

Crash safety, bursts, outages and the key layout. Every test uses its own
random key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from wsmanager.exceptions import ConfigurationError, RegistryUnavailable, SocketNotFound
from wsmanager.registry.redis import RedisRegistry, channel_layer_host
from wsmanager.registry.redis import _registry as redis_registry_module
from wsmanager.registry.redis._common import (
    ClusterAddress,
    SentinelAddress,
    parse_cluster_url,
    parse_sentinel_url,
)

from . import redis_support
from .recovery_contract import RecoveryContract
from .redis_support import ClusterGroup
from .registry_contract import RegistryContract, entry

redis_url = redis_support.redis_url  # the fixture, made visible to this module
shared_cluster = redis_support.shared_cluster
sentinels = redis_support.sentinels  # a primary, a replica and three sentinels of its own


def _prefix() -> str:
    return f"wsmtest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def url(redis_url: str) -> str:
    """Where the registries of the fixtures below live (a class may say elsewhere)."""
    return redis_url


@pytest.fixture
async def registry(url: str) -> AsyncIterator[RedisRegistry]:
    """A RedisRegistry on a fresh prefix, its keys deleted afterwards."""
    reg = RedisRegistry(url=url, prefix=_prefix())
    yield reg
    await reg.clear()
    await reg.close()


@pytest.fixture
async def make_registry(url: str) -> AsyncIterator[Any]:
    """A factory of RedisRegistry instances (one per simulated process) sharing one prefix."""
    prefix = _prefix()
    made: list[RedisRegistry] = []

    def make(**options: Any) -> RedisRegistry:
        made.append(RedisRegistry(url=url, prefix=prefix, **options))
        return made[-1]

    yield make
    if made:
        await made[0].clear()
    for reg in made:
        await reg.close()


@pytest.mark.redis
class TestRedisRegistryContract(RegistryContract, RecoveryContract):
    """Every contract test, against :class:`RedisRegistry`."""


@pytest.mark.redis
class TestOnRedisCluster(RegistryContract, RecoveryContract):
    """Every contract test again, on a Redis Cluster of three primaries and three
    replicas (``redis+cluster://``): each script's keys share the keyspace's slot."""

    @pytest.fixture
    def url(self, shared_cluster: ClusterGroup) -> str:
        return shared_cluster.url


# -- helpers -------------------------------------------------------------------
class Proxy:
    """A TCP forwarder to Redis that a test can cut (an outage) and restore."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def expire_now(reg: RedisRegistry, node: str) -> None:
    """Delete ``node``'s liveness key: what its expiry does after ``node_ttl`` without a
    heartbeat, without waiting for it (that the key expires is checked by its PTTL)."""
    raw = aioredis.from_url(reg.url)
    try:
        assert await raw.delete(f"{reg.keyspace}:alive:{node}") == 1
    finally:
        await raw.aclose()


async def pttl(reg: RedisRegistry, node: str) -> int:
    """Milliseconds left to ``node``'s liveness key (-2: none)."""
    raw = aioredis.from_url(reg.url)
    try:
        return int(await raw.pttl(f"{reg.keyspace}:alive:{node}"))
    finally:
        await raw.aclose()


def _port(url: str) -> int:
    return urlsplit(url).port or 6379


async def _keys(reg: RedisRegistry) -> set[str]:
    client = aioredis.Redis.from_url(reg.url, decode_responses=True)
    try:
        return {
            str(k)
            for pattern in (reg.keyspace, reg.prefix)
            async for k in client.scan_iter(match=pattern + ":*")
        }
    finally:
        await client.aclose()


# -- bursts ----------------------------------------------------------------------
@pytest.mark.redis
class TestBursts:
    async def test_500_concurrent_adds_succeed(self, registry: RedisRegistry) -> None:
        """500 concurrent add() calls all succeed (no MaxConnectionsError)."""
        await asyncio.gather(*(registry.add(entry(f"s{i}", groups={"all"})) for i in range(500)))
        assert await registry.count("chat") == 500
        assert len(await registry.group_members("chat", "all")) == 500

    async def test_burst_beyond_pool_size_waits_for_a_connection(self, make_registry: Any) -> None:
        """With max_connections=4, 300 concurrent calls queue for the pool and succeed."""
        reg = make_registry(max_connections=4)
        await reg.add(entry("s1"))
        results = await asyncio.gather(*(reg.get("chat", "s1") for _ in range(300)))
        assert all(info == entry("s1") for info in results)


# -- crash safety ------------------------------------------------------------------
@pytest.mark.redis
class TestCrashSafety:
    async def test_sockets_of_a_killed_node_vanish_everywhere(self, make_registry: Any) -> None:
        """A node that stops heartbeating loses every socket once its TTL passes."""
        reg = make_registry(node_ttl=30)
        await reg.add(entry("a1", node="n1", user_id="ann", groups={"room", "n1-only"}))
        await reg.add(entry("a2", node="n1", user_id="bob", groups={"room"}))
        await reg.add(entry("g1", handler="game", node="n1", groups={"table"}))
        await reg.add(entry("b1", node="n2", user_id="bob", groups={"room"}))
        assert 0 < await pttl(reg, "n1") <= 30_000
        await expire_now(reg, "n1")  # n1 was "SIGKILLed" and its TTL passed; n2 lives on
        await reg.node_alive("n2")
        assert await reg.count("chat") == 1
        assert await reg.ids("chat") == ["b1"]
        assert await reg.count("game") == 0
        assert await reg.group_members("chat", "room") == ["b1"]
        assert await reg.groups("chat") == ["room"]
        assert await reg.groups("game") == []
        assert await reg.user_sockets("chat", "ann") == []
        assert await reg.user_sockets("chat", "bob") == ["b1"]
        assert await reg.get("chat", "a1") is None
        assert await reg.get_many("chat", ["a1", "b1"]) == [
            entry("b1", node="n2", user_id="bob", groups={"room"})
        ]
        assert await reg.nodes_of("chat", ["a1", "a2", "b1"]) == {"n2": ["b1"]}
        assert await reg.group_nodes("chat", "room") == {"n2": 1}
        assert await reg.group_nodes("chat", "n1-only") == {}
        assert await reg.group_nodes("game", "table") == {}

    async def test_sigkilled_process_vanishes_within_two_heartbeats(self, make_registry: Any) -> None:
        """A real process heartbeating every 0.5s and SIGKILLed is forgotten, with its departures.

        The two-heartbeat bound is proven without timing (see
        test_liveness_lasts_node_ttl_and_its_loss_is_acted_on_at_once and
        tests/test_heartbeat.py); the 10 s here only stops a hang.
        """
        reader = make_registry(node_ttl=1.0)
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            reader.url,
            reader.prefix,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        try:
            assert child.stdout is not None
            assert await asyncio.wait_for(child.stdout.readline(), 20) == b"ready\n"
            assert sorted(await reader.ids("chat")) == ["c0", "c1", "c2"]
            for _ in range(2):  # two heartbeats
                assert await asyncio.wait_for(child.stdout.readline(), 20) == b"beat\n"
            child.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            while await reader.count("chat"):
                assert time.monotonic() - killed < 10, "the dead node's sockets were never reaped"
                await asyncio.sleep(0.02)
            assert await reader.groups("chat") == []
            taken = await reader.take_departures()
            assert sorted((d.id, *d.left) for d in taken) == [("c0", "g"), ("c1", "g"), ("c2", "g")]
        finally:
            if child.returncode is None:
                child.kill()
            await child.wait()

    async def test_liveness_lasts_node_ttl_and_its_loss_is_acted_on_at_once(self, make_registry: Any) -> None:
        """The bound of two heartbeats, without timing: the key lives at most ``node_ttl``, and
        the first call after it is gone forgets the node's sockets and queues their departures."""
        writer, reader = make_registry(node_ttl=30), make_registry(node_ttl=30)
        await writer.add(entry("s1", node="n1", groups={"g"}))
        await writer.node_alive("n1")
        raw = aioredis.from_url(writer.url)
        try:
            key = f"{writer.keyspace}:alive:n1"
            assert 0 < await raw.pttl(key) <= 30_000
            await raw.delete(key)  # what its expiry does
        finally:
            await raw.aclose()
        assert await reader.count("chat") == 0
        assert await reader.groups("chat") == []
        assert [(d.id, *d.left) for d in await reader.take_departures()] == [("s1", "g")]

    async def test_stats_of_a_node_that_stops_beating_expire(self, make_registry: Any) -> None:
        """A dead node's counters vanish with its liveness (node_ttl), like its sockets."""
        dead, reader = make_registry(node_ttl=0.3), make_registry(node_ttl=0.3)
        await dead.add(entry("s1", node="n1"))
        await dead.put_node_stats("n1", {"delivered": 1})
        raw = aioredis.from_url(dead.url)
        try:
            assert 0 < await raw.pttl(f"{dead.keyspace}:stats:n1") <= 300
        finally:
            await raw.aclose()
        assert (await reader.node_stats())["n1"] == {"delivered": 1}

    async def test_last_activity_of_a_node_that_stops_beating_expires(self, make_registry: Any) -> None:
        """A node's published last activities live node_ttl, like its counters: nothing to sweep."""
        dead, reader = make_registry(node_ttl=0.3), make_registry(node_ttl=0.3)
        info = entry("s1", node="n1")
        await dead.add(info)
        await dead.put_node_activity("n1", {"s1": 1712345700.5})
        raw = aioredis.from_url(dead.url)
        try:
            assert 0 < await raw.pttl(f"{dead.keyspace}:activity:n1") <= 300
        finally:
            await raw.aclose()
        assert await reader.last_activity([info]) == {"s1": 1712345700.5}

    async def test_reads_reap_without_any_heartbeat(
        self, make_registry: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Another process's reads alone notice the expired node (no node_alive needed), once
        its own clock says a liveness key may have expired (it does not sweep before)."""
        dead = make_registry(node_ttl=30)
        reader = make_registry(node_ttl=30)
        await dead.add(entry("s1", node="n1", groups={"g"}))
        assert await reader.count("chat") == 1
        await expire_now(dead, "n1")

        class ThirtySecondsOn:
            """The ``time`` of wsmanager.registry.redis._registry, node_ttl later than the real one."""

            @staticmethod
            def monotonic() -> float:
                return time.monotonic() + 30

        monkeypatch.setattr(redis_registry_module, "time", ThirtySecondsOn)
        assert await reader.count("chat") == 0
        assert await reader.groups("chat") == []

    async def test_heartbeating_node_survives_many_ttls(self, make_registry: Any) -> None:
        """A node that calls node_alive within its TTL keeps its sockets indefinitely: each
        heartbeat gives its liveness key a whole TTL again (time is not waited for: the key
        is aged by hand to a moment before it would expire, eight times over)."""
        live = make_registry(node_ttl=30)
        other = make_registry(node_ttl=30)
        await live.add(entry("s1", node="n1"))
        await live.node_alive("n1")
        raw = aioredis.from_url(live.url)
        try:
            for _ in range(8):
                await raw.pexpire(f"{live.keyspace}:alive:n1", 1_000)  # 29 s of the TTL gone
                await live.node_alive("n1")
                assert await pttl(live, "n1") > 1_000
                assert await other.ids("chat") == ["s1"]
        finally:
            await raw.aclose()

    async def test_concurrent_reapers_share_the_work(self, make_registry: Any) -> None:
        """Two processes reaping one dead node return each socket exactly once."""
        first, second = make_registry(node_ttl=30), make_registry(node_ttl=30)
        first.sweep_batch = second.sweep_batch = 7
        await asyncio.gather(*(first.add(entry(f"s{i}", groups={"g"})) for i in range(100)))
        await expire_now(first, entry("s0").node)
        # Each node_alive sweeps the expired nodes; all three run at once.
        await asyncio.gather(first.node_alive("x"), second.node_alive("y"), first.node_alive("z"))
        got = [await first.take_departures(1000), await second.take_departures(1000)]
        ids = [info.id for batch in got for info in batch]
        assert sorted(ids) == sorted(f"s{i}" for i in range(100))
        assert await second.count("chat") == 0
        assert await second.groups("chat") == []

    async def test_reaped_departures_are_taken_once_by_one_process(self, make_registry: Any) -> None:
        """Reaping queues the departures that left a group; concurrent takers share them."""
        first, second = make_registry(node_ttl=30), make_registry(node_ttl=30)
        first.sweep_batch = second.sweep_batch = 7
        await first.add(entry("a1", node="n1", user_id="ann", groups={"room"}))
        await first.add(entry("a2", node="n1", user_id="bob", groups={"room"}))
        await first.add(entry("b1", node="n2", user_id="bob", groups={"room"}))
        await asyncio.gather(*(first.add(entry(f"s{i}", node="n1", groups={"g"})) for i in range(60)))
        await expire_now(first, "n1")  # n1 was "SIGKILLed"; n2 lives on
        await second.node_alive("n2")
        taken = await asyncio.gather(*(reg.take_departures(5) for reg in (first, second) * 10))
        flat = [d for batch in taken for d in batch]
        assert len(flat) == len({d.id for d in flat}) == 61  # bob is still in the room (b1)
        assert next(d for d in flat if d.id == "a1").left == {"room"}
        assert "a2" not in {d.id for d in flat}
        assert await first.take_departures() == []

    async def test_queued_departures_keep_every_character(self, make_registry: Any) -> None:
        """A queued departure comes back equal: non-ASCII, quotes, slashes and colons intact."""
        reg = make_registry()
        info = entry("ü 3", handler="a%3Ab:x", node="n/1", user_id="ü:1", groups={"ç", "😀", 'q"\\/'})
        await reg.add(info.with_changes(meta={"name": "Zoë \u2028"}))
        gone = await reg.remove_node("n/1")
        assert await reg.take_departures() == gone
        assert gone[0].left == {"ç", "😀", 'q"\\/'} and gone[0].meta == {"name": "Zoë \u2028"}

    async def test_departure_queue_expires(self, make_registry: Any) -> None:
        """The queue of departures expires if no process takes from it."""
        reg = make_registry(node_ttl=0.2)
        await reg.add(entry("s1", node="n1", groups={"g"}))
        await reg.remove_node("n1")
        client = aioredis.Redis.from_url(reg.url, decode_responses=True)
        try:
            ttl = await client.pttl(f"{reg.keyspace}:departed")
        finally:
            await client.aclose()
        assert 0 < ttl <= 60_000

    async def test_remove_node_in_batches(self, make_registry: Any) -> None:
        """remove_node() forgets a node larger than one sweep batch, and only that node."""
        reg = make_registry()
        reg.sweep_batch = 4
        for i in range(25):
            await reg.add(entry(f"s{i}", node="n1", user_id=f"u{i % 3}"))
        await reg.add(entry("keep", node="n2", user_id="u0"))
        gone = await reg.remove_node("n1")
        assert sorted(i.id for i in gone) == sorted(f"s{i}" for i in range(25))
        assert await reg.ids("chat") == ["keep"]
        assert await reg.user_sockets("chat", "u0") == ["keep"]
        assert f"{reg.keyspace}:alive:n1" not in await _keys(reg)

    async def test_late_heartbeat_is_logged(
        self, make_registry: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """node_alive() warns when the node's own liveness key had already expired."""
        reg = make_registry(node_ttl=30)
        await reg.node_alive("n1")
        await expire_now(reg, "n1")
        with caplog.at_level(logging.WARNING, logger="wsmanager.registry"):
            await reg.node_alive("n1")
        assert "liveness key of node n1 was missing" in caplog.text


ROOT = str(Path(__file__).resolve().parent.parent)

# A server process in miniature: registers three sockets, then heartbeats every 0.5s
# (two heartbeats to a TTL, as the library's nodes do), saying so after each.
# Its sleep stays: it is the period of a real process's heartbeat, the thing under test, in
# another process where no clock can be replaced; the test waits for its "beat" lines.
CHILD = """
import asyncio, sys
from wsmanager.registry._base import ConnectionInfo
from wsmanager.registry.redis import _registry as redis_registry_module
from wsmanager.registry.redis._common import SentinelAddress, parse_sentinel_url
from wsmanager.registry.redis import RedisRegistry

async def main():
    reg = RedisRegistry(url=sys.argv[1], prefix=sys.argv[2], node_ttl=1.0)
    for i in range(3):
        await reg.add(ConnectionInfo(id=f"c{i}", handler="chat", node="child", groups=frozenset({"g"})))
    await reg.node_alive("child")
    print("ready", flush=True)
    while True:
        await asyncio.sleep(0.5)
        await reg.node_alive("child")
        print("beat", flush=True)

asyncio.run(main())
"""


# -- data layout ---------------------------------------------------------------------
@pytest.mark.redis
class TestLayout:
    async def test_key_layout_is_as_documented(self, registry: RedisRegistry) -> None:
        """The keys and the stored JSON match the layout in the module docstring."""
        info = entry("s1", node="n1", user_id="u", groups={"g"}, meta={"k": "v"})
        await registry.add(info)
        p = registry.keyspace
        assert p == "{" + registry.prefix + "}"  # a Redis Cluster hash tag: one slot
        assert await _keys(registry) == {
            f"{p}:sockets:chat",
            f"{p}:routes:chat",
            f"{p}:groups:chat",
            f"{p}:group:chat:g",
            f"{p}:presence:chat:g",
            f"{p}:gnodes:chat:g",
            f"{p}:user:chat:u",
            f"{p}:node:n1",
            f"{p}:nodes",
            f"{p}:alive:n1",
        }
        client = aioredis.Redis.from_url(registry.url, decode_responses=True)
        try:
            stored = await client.hget(f"{p}:sockets:chat", "s1")
            assert stored is not None and json.loads(stored) == info.to_json()
            assert await client.hget(f"{p}:routes:chat", "s1") == "n1"
            assert await client.smembers(f"{p}:node:n1") == {"chat:s1"}
            assert await client.hgetall(f"{p}:presence:chat:g") == {"u": "1"}
            assert await client.hgetall(f"{p}:gnodes:chat:g") == {"n1": "1"}
        finally:
            await client.aclose()
        await registry.remove("chat", "s1")
        assert await _keys(registry) == {f"{p}:nodes", f"{p}:alive:n1"}
        await registry.clear()
        assert await _keys(registry) == set()

    async def test_lost_presence_counters_heal(self, registry: RedisRegistry) -> None:
        """A member whose counter is missing (data written before presence) still leaves once."""
        await registry.add(entry("s1", user_id="u", groups={"g"}))
        await registry.add(entry("s2", user_id="u", groups={"g"}))
        client = aioredis.Redis.from_url(registry.url, decode_responses=True)
        try:
            await client.delete(f"{registry.keyspace}:presence:chat:g")
            first = await registry.remove("chat", "s1")
            assert first is not None and first.left == {"g"}
            assert await client.exists(f"{registry.keyspace}:presence:chat:g") == 0
        finally:
            await client.aclose()
        assert await registry.group_add("chat", "g", "s2") is None  # still a member
        assert await registry.group_discard("chat", "g", "s2") is not None

    async def test_two_processes_joining_one_member_report_one_join(self, make_registry: Any) -> None:
        """Tabs of one user on two processes (own pools) join and leave a group once each."""
        one, two = make_registry(), make_registry()
        sids = [f"s{i}" for i in range(40)]
        for i, sid in enumerate(sids):
            await (one, two)[i % 2].add(entry(sid, node=f"n{i % 2}", user_id="u"))
        joins = await asyncio.gather(
            *((one, two)[i % 2].group_add("chat", "g", sid) for i, sid in enumerate(sids))
        )
        assert len([j for j in joins if j is not None]) == 1
        gone = await asyncio.gather(*((one, two)[i % 2].remove("chat", sid) for i, sid in enumerate(sids)))
        assert len([d for d in gone if d is not None and d.left]) == 1

    async def test_add_replaces_an_entry_with_the_same_id(self, registry: RedisRegistry) -> None:
        """add() of an existing id replaces its groups, user and node memberships."""
        await registry.add(entry("s1", node="n1", user_id="u1", groups={"old"}))
        await registry.add(entry("s1", node="n2", user_id="u2", groups={"new"}))
        assert await registry.groups("chat") == ["new"]
        assert await registry.user_sockets("chat", "u1") == []
        assert await registry.user_sockets("chat", "u2") == ["s1"]
        assert await registry.remove_node("n1") == []
        assert await registry.nodes_of("chat", ["s1"]) == {"n2": ["s1"]}

    async def test_clear_leaves_other_prefixes_alone(self, make_registry: Any, redis_url: str) -> None:
        """clear() deletes only the keys under its own prefix."""
        mine = make_registry()
        theirs = RedisRegistry(url=redis_url, prefix=mine.prefix + "x")
        try:
            await mine.add(entry("s1"))
            await theirs.add(entry("s1"))
            await mine.clear()
            assert await mine.count("chat") == 0
            assert await theirs.count("chat") == 1
        finally:
            await theirs.clear()
            await theirs.close()


# -- outages -----------------------------------------------------------------------
CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("add", (entry("s1"),)),
    ("remove", ("chat", "s1")),
    ("get", ("chat", "s1")),
    ("get_many", ("chat", ["s1"])),
    ("ids", ("chat",)),
    ("count", ("chat",)),
    ("update_meta", ("chat", "s1", {"a": 1})),
    ("group_add", ("chat", "g", "s1")),
    ("group_discard", ("chat", "g", "s1")),
    ("group_members", ("chat", "g")),
    ("groups", ("chat",)),
    ("user_sockets", ("chat", "u")),
    ("nodes_of", ("chat", ["s1"])),
    ("node_alive", ("n1",)),
    ("remove_node", ("n1",)),
    ("take_departures", ()),
    ("clear", ()),
]


class TestOutages:
    @pytest.mark.parametrize(("method", "args"), CALLS, ids=[name for name, _ in CALLS])
    async def test_unreachable_redis_raises_registry_unavailable(
        self, method: str, args: tuple[Any, ...]
    ) -> None:
        """Every method raises RegistryUnavailable at once when nothing listens."""
        reg = RedisRegistry(url="redis://127.0.0.1:1/0", node_ttl=10)
        with pytest.raises(RegistryUnavailable, match=r"127\.0\.0\.1:1"):
            await getattr(reg, method)(*args)
        await reg.close()

    async def test_error_message_hides_the_password(self) -> None:
        """The RegistryUnavailable message does not show the URL's password."""
        reg = RedisRegistry(url="redis://user:s3cret@127.0.0.1:1/0", node_ttl=10)
        with pytest.raises(RegistryUnavailable) as caught:
            await reg.count("chat")
        assert "s3cret" not in str(caught.value)
        assert "s3cret" not in repr(reg)
        await reg.close()

    async def test_silent_server_times_out(self) -> None:
        """A server that accepts but never answers costs socket_timeout, not a hang."""

        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await reader.read(65536):
                pass

        server = await asyncio.start_server(swallow, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reg = RedisRegistry(url=f"redis://127.0.0.1:{port}/0", node_ttl=10, socket_timeout=0.3)
        try:
            with pytest.raises(RegistryUnavailable):
                await reg.count("chat")
        finally:
            await reg.close()
            server.close()

    @pytest.mark.redis
    async def test_next_call_works_when_redis_is_back(self, redis_url: str) -> None:
        """After an outage the first call succeeds again, with nothing rebuilt by hand."""
        proxy = Proxy(_port(redis_url))
        await proxy.start()
        db = redis_url.rsplit("/", 1)[1]
        reg = RedisRegistry(url=f"redis://127.0.0.1:{proxy.port}/{db}", prefix=_prefix())
        try:
            await reg.add(entry("s1"))
            await proxy.stop()
            with pytest.raises(RegistryUnavailable):
                await reg.count("chat")
            await proxy.start()
            assert await reg.count("chat") == 1
            assert await reg.ids("chat") == ["s1"]
        finally:
            await reg.clear()
            await reg.close()
            await proxy.stop()


# -- event loops and configuration ----------------------------------------------------------
@pytest.mark.redis
def test_works_across_event_loops(redis_url: str) -> None:
    """One instance keeps working when used from a new event loop after the old one closed."""
    reg = RedisRegistry(url=redis_url, prefix=_prefix())
    asyncio.run(reg.add(entry("s1")))
    assert asyncio.run(reg.count("chat")) == 1

    async def finish() -> None:
        await reg.clear()
        await reg.close()

    asyncio.run(finish())


@pytest.fixture
def heartbeat_3s(settings: Any) -> Iterator[None]:
    """WSMANAGER["HEARTBEAT_INTERVAL"] set to 3 seconds."""
    settings.WSMANAGER = {"HEARTBEAT_INTERVAL": 3.0}
    yield


@pytest.mark.usefixtures("heartbeat_3s")
def test_node_ttl_defaults_to_one_and_a_half_heartbeats() -> None:
    """Without node_ttl, a node's liveness lasts 1.5 HEARTBEAT_INTERVALs (swept every half)."""
    assert RedisRegistry().node_ttl == 4.5
    assert RedisRegistry(node_ttl=1.5).node_ttl == 1.5


def test_invalid_options_are_configuration_errors() -> None:
    """A non-positive node_ttl or max_connections is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="node_ttl"):
        RedisRegistry(node_ttl=0)
    with pytest.raises(ConfigurationError, match="max_connections"):
        RedisRegistry(node_ttl=1, max_connections=0)


def test_malformed_url_is_a_configuration_error() -> None:
    """A URL redis-py cannot parse is reported at construction, password hidden."""
    with pytest.raises(ConfigurationError, match="url") as caught:
        RedisRegistry(url="http://user:s3cret@example.com/0", node_ttl=1)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://127.0.0.1:x/svc",
        "redis+sentinel://127.0.0.1:26379/",
        "redis+sentinel://127.0.0.1:26379/svc/zero",
        "redis+sentinel://127.0.0.1:26379/svc/0/extra",
        "redis+sentinel://127.0.0.1:26379,,127.0.0.1:26380/svc",
        "redis+sentinel://127.0.0.1:26379/svc?db=1",
        "redis+cluster://127.0.0.1/",  # a node needs its port
        "redis+cluster://127.0.0.1:7000/1",  # a cluster has database 0 only
        "redis+cluster://127.0.0.1:7000,,127.0.0.1:7001",
        "redis+cluster://127.0.0.1:7000?read_from_replicas=1",
    ],
)
def test_malformed_sentinel_or_cluster_url_is_a_configuration_error(url: str) -> None:
    """A redis+sentinel URL without hosts, service, or with a bad port, db or a query, and a
    redis+cluster URL with a node without a port, a database or a query, are refused."""
    with pytest.raises(ConfigurationError, match="url"):
        RedisRegistry(url=url, node_ttl=1)


def test_sentinel_url_is_read_and_its_password_hidden() -> None:
    """Hosts (default port 26379, IPv6 in brackets), service, database and credentials."""
    url = "redis+sentinel://app:s%40cret@10.0.0.1:5000,sentinel-b,[::1]:5001/orders/3"
    assert parse_sentinel_url(url) == SentinelAddress(
        (("10.0.0.1", 5000), ("sentinel-b", 26379), ("::1", 5001)), "orders", 3, "app", "s@cret"
    )
    assert parse_sentinel_url("redis+sentinel://h/orders") == SentinelAddress((("h", 26379),), "orders")
    assert parse_sentinel_url("redis://127.0.0.1:6379/0") is None
    assert "s%40cret" not in repr(RedisRegistry(url=url, node_ttl=1))


@pytest.mark.parametrize("prefix", ["", "a{b", "a}b", "{wsm}"])
def test_an_empty_prefix_or_one_with_braces_is_a_configuration_error(prefix: str) -> None:
    """The registry puts its prefix in braces (its keys' hash tag): braces of its own, or
    none at all (``{}`` is no hash tag), would split its keys over slots of a cluster."""
    with pytest.raises(ConfigurationError, match="prefix"):
        RedisRegistry(url="redis://127.0.0.1:6379/0", prefix=prefix, node_ttl=1)


def test_cluster_url_is_read_and_refused_for_channels_redis() -> None:
    """Nodes (IPv6 in brackets), credentials; channels_redis cannot follow a cluster, so
    channel_layer_host says which layer can."""
    url = "redis+cluster://app:s%40cret@10.0.0.1:7000,[::1]:7001/"
    assert parse_cluster_url(url) == ClusterAddress((("10.0.0.1", 7000), ("::1", 7001)), "app", "s@cret")
    assert parse_cluster_url("redis+cluster://h:7000") == ClusterAddress((("h", 7000),))
    assert parse_cluster_url("redis+sentinel://h/orders") is None
    assert "s%40cret" not in repr(RedisRegistry(url=url, node_ttl=1))
    with pytest.raises(ValueError, match="RedisClusterChannelLayer"):
        channel_layer_host(url)


def test_the_channel_layer_host_comes_from_the_registrys_url() -> None:
    """channel_layer_host: channels_redis's hosts entry for a plain or a Sentinel URL, the
    options added as given, credentials only when the URL has them."""
    url = "redis+sentinel://app:s%40cret@10.0.0.1:5000,sentinel-b,[::1]:5001/orders/3"
    assert channel_layer_host(url, socket_timeout=15) == {
        "sentinels": [("10.0.0.1", 5000), ("sentinel-b", 26379), ("::1", 5001)],
        "master_name": "orders",
        "db": 3,
        "username": "app",
        "password": "s@cret",
        "socket_timeout": 15,
    }
    assert channel_layer_host("redis+sentinel://h/orders") == {
        "sentinels": [("h", 26379)],
        "master_name": "orders",
        "db": 0,
    }
    assert channel_layer_host("redis://127.0.0.1:6379/1", socket_timeout=15) == {
        "address": "redis://127.0.0.1:6379/1",
        "socket_timeout": 15,
    }
    with pytest.raises(ValueError):
        channel_layer_host("redis+sentinel://127.0.0.1:x/svc")


@pytest.mark.redis
class TestSentinel:
    """The registry behind Sentinel follows the primary when a replica is promoted."""

    @staticmethod
    async def _sentinel_registry(group: redis_support.SentinelGroup) -> RedisRegistry:
        group.wait(group.ready, "sentinels see each other and the replica")
        reg = RedisRegistry(url=group.url, prefix=_prefix(), node_ttl=60, max_connections=2)
        await reg.add(entry("s1", groups={"room"}))
        return reg

    async def test_coordinated_failover_is_followed_without_an_error(
        self, sentinels: redis_support.SentinelGroup
    ) -> None:
        """After SENTINEL FAILOVER the old primary answers writes with READONLY; the
        pool's connection to it is dropped, the call retried once on the new primary."""
        reg = await self._sentinel_registry(sentinels)
        try:
            # The pool is bounded and blocking: 20 calls at once on 2 connections wait their turn.
            found = await asyncio.gather(*(reg.get("chat", "s1") for _ in range(20)))
            assert all(info is not None and info.id == "s1" for info in found)
            sentinels.failover()
            sentinels.wait(sentinels.promoted, "the replica promoted")
            sentinels.wait(sentinels.demoted, "the old primary a replica")
            await reg.add(entry("s2", groups={"room"}))  # on the connection of the old primary
            assert set(await reg.group_members("chat", "room")) == {"s1", "s2"}
        finally:
            await reg.close()

    async def test_killed_primary_is_unavailable_until_the_replica_is_promoted(
        self, sentinels: redis_support.SentinelGroup
    ) -> None:
        """While the sentinels still name the dead primary, calls raise RegistryUnavailable
        (no hang); once the replica is promoted, the same registry works again."""
        reg = await self._sentinel_registry(sentinels)
        try:
            sentinels.kill_primary()
            with pytest.raises(RegistryUnavailable):
                await reg.get("chat", "s1")
            deadline = time.monotonic() + 60
            while True:
                try:
                    await reg.add(entry("s2"))
                    break
                except RegistryUnavailable:
                    assert time.monotonic() < deadline, "no failover within 60 s"
                    await asyncio.sleep(0.05)
            assert sentinels.promoted()
            assert (await reg.get("chat", "s2")).id == "s2"
        finally:
            await reg.close()


@pytest.mark.redis
class TestWrittenEntryGuess:
    """What a process wrote for its own sockets saves the read, and a stale guess changes nothing."""

    @staticmethod
    def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
        reads = [0]
        original = aioredis.Redis.hget

        async def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
            reads[0] += 1
            return await original(self, *args, **kwargs)

        monkeypatch.setattr(aioredis.Redis, "hget", counting)
        return reads

    async def test_an_entry_this_process_wrote_is_changed_without_reading(
        self, registry: RedisRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """group_add and update_meta of an entry the same registry added do no HGET."""
        await registry.add(entry("s1", node="n1"))
        reads = self.count_reads(monkeypatch)
        await registry.group_add("chat", "g", "s1")
        await registry.update_meta("chat", "s1", {"name": "ann"})
        assert reads == [0]
        got = await registry.get("chat", "s1")
        assert got is not None and got.groups == {"g"} and got.meta == {"name": "ann"}

    async def test_a_stale_guess_falls_back_to_the_stored_entry(self, make_registry: Any) -> None:
        """A change made by another process is neither lost nor a failure."""
        mine, other = make_registry(), make_registry()
        await mine.add(entry("s1", node="n1"))
        await other.group_add("chat", "other", "s1")
        await mine.group_add("chat", "g", "s1")
        got = await other.get("chat", "s1")
        assert got is not None and got.groups == {"other", "g"}

    async def test_a_guess_claiming_membership_is_not_trusted_for_a_no_op(self, make_registry: Any) -> None:
        """If the guess says "already a member" but the store says not, the socket is still added."""
        mine, other = make_registry(), make_registry()
        await mine.add(entry("s1", node="n1"))
        await mine.group_add("chat", "g", "s1")
        await other.group_discard("chat", "g", "s1")
        await mine.group_add("chat", "g", "s1")
        assert await other.group_members("chat", "g") == ["s1"]

    async def test_a_guess_for_a_gone_socket_still_raises(self, make_registry: Any) -> None:
        """SocketNotFound when another process removed the socket, whatever was written here."""
        mine, other = make_registry(), make_registry()
        await mine.add(entry("s1", node="n1"))
        await other.remove("chat", "s1")
        with pytest.raises(SocketNotFound):
            await mine.group_add("chat", "g", "s1")
