"""The topic history contract on both stores, and what only the Redis store does:
a lost key gives a new epoch, two processes share one history."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from wsmanager.registry.redis import RedisRegistry
from wsmanager.topics import InMemoryHistory, Position
from wsmanager.topics._redis import RedisHistory

from . import redis_support
from .history_contract import Clock, HistoryContract, clock, publish
from .redis_support import ClusterGroup

redis_url = redis_support.redis_url
shared_cluster = redis_support.shared_cluster
__all__ = ["clock"]


class TestInMemoryHistory(HistoryContract):
    @pytest.fixture
    def store(self, clock: Clock) -> InMemoryHistory:
        return InMemoryHistory(clock)

    async def test_a_forgotten_topic_starts_a_new_epoch(self, store: InMemoryHistory) -> None:
        await publish(store, 2)
        before = (await store.read("h", "t", None, limit=0, ttl=None)).position
        store.forget("h", "t")
        read = await store.read("h", "t", before, limit=10, ttl=None)
        assert not read.recovered and read.position.epoch != before.epoch and read.position.offset == 0


async def test_the_memory_store_forgets_the_least_recently_used_topic_past_its_bound(clock: Clock) -> None:
    store = InMemoryHistory(clock, max_topics=2)
    await publish(store, 1, topic="a")
    kept = (await store.read("h", "a", None, limit=0, ttl=None)).position
    await publish(store, 1, topic="b")
    await store.read("h", "a", None, limit=0, ttl=None)  # "a" used last: "b" goes first
    await publish(store, 1, topic="c")
    assert (await store.read("h", "a", kept, limit=10, ttl=None)).recovered
    again = await store.read("h", "b", None, limit=0, ttl=None)
    assert again.position.offset == 0  # forgotten: a new epoch, offsets from the start


@pytest.fixture
async def registry(redis_url: str) -> AsyncIterator[RedisRegistry]:
    reg = RedisRegistry(url=redis_url, prefix=f"wsmtest-{uuid.uuid4().hex[:12]}")
    yield reg
    await reg.clear()
    await reg.close()


@pytest.mark.redis
class TestRedisHistoryOnCluster(HistoryContract):
    """The history contract on a Redis Cluster: a topic's two keys share a slot."""

    @pytest.fixture
    async def store(self, shared_cluster: ClusterGroup, clock: Clock) -> AsyncIterator[RedisHistory]:
        reg = RedisRegistry(url=shared_cluster.url, prefix=f"wsmtest-{uuid.uuid4().hex[:12]}")
        yield RedisHistory(reg._redis, reg.prefix, clock)
        await reg.clear()
        await reg.close()


@pytest.mark.redis
class TestRedisHistory(HistoryContract):
    @pytest.fixture
    def store(self, registry: RedisRegistry, clock: Clock) -> RedisHistory:
        return RedisHistory(registry._redis, registry.prefix, clock)

    async def test_a_deleted_stream_starts_a_new_epoch(self, store: RedisHistory, redis_url: str) -> None:
        await publish(store, 3)
        before = (await store.read("h", "t", None, limit=0, ttl=None)).position
        _meta, stream = store.keys("h", "t")
        async with aioredis.Redis.from_url(redis_url) as r:
            assert await r.delete(stream) == 1
        read = await store.read("h", "t", before, limit=10, ttl=None)
        assert not read.recovered and read.position == Position(0, read.position.epoch)
        assert read.position.epoch != before.epoch
        after = await store.append("h", "t", "e", "1", size=10, ttl=None)
        assert (after.offset, after.epoch) == (1, read.position.epoch)

    async def test_a_deleted_hash_starts_a_new_epoch(self, store: RedisHistory, redis_url: str) -> None:
        await publish(store, 3)
        before = (await store.read("h", "t", None, limit=0, ttl=None)).position
        meta, _stream = store.keys("h", "t")
        async with aioredis.Redis.from_url(redis_url) as r:
            assert await r.delete(meta) == 1
        published = await store.append("h", "t", "e", "1", size=10, ttl=None)
        assert published.offset == 1 and published.epoch != before.epoch
        read = await store.read("h", "t", Position(0, published.epoch), limit=10, ttl=None)
        assert [p.offset for p in read.publications] == [1]  # the old stream's entries went with it

    async def test_two_processes_share_one_history(self, registry: RedisRegistry, redis_url: str) -> None:
        other = RedisRegistry(url=redis_url, prefix=registry.prefix)
        try:
            a = RedisHistory(registry._redis, registry.prefix)
            b = RedisHistory(other._redis, other.prefix)
            first = await a.append("h", "t", "e", "1", size=10, ttl=None)
            second = await b.append("h", "t", "e", "2", size=10, ttl=None)
            assert (second.offset, second.epoch) == (2, first.epoch)
            read = await b.read("h", "t", Position(0, first.epoch), limit=10, ttl=None)
            assert [p.data_json for p in read.publications] == ["1", "2"]
        finally:
            await other.close()

    async def test_keys_expire_a_day_after_the_ttl(self, store: RedisHistory, redis_url: str) -> None:
        await publish(store, 1, ttl=60)
        meta, stream = store.keys("h", "t")
        async with aioredis.Redis.from_url(redis_url) as r:
            for key in (meta, stream):
                assert 86_000_000 < await r.pttl(key) <= 86_460_000
        await publish(store, 1, topic="forever")
        async with aioredis.Redis.from_url(redis_url) as r:
            assert await r.pttl(store.keys("h", "forever")[1]) == -1
