"""``wsmanager.layers.RedisClusterChannelLayer`` against a real Redis Cluster (3 primaries, 3 replicas).

Each test uses its own prefix, so the tests that share the session's cluster
never see each other's messages; the failover test has a cluster of its own.
Nothing here waits a fixed time to decide an outcome: a condition is awaited
(``eventually``), bounded only so that a hang fails.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis
from asgiref.sync import async_to_sync
from redis.exceptions import RedisError

from tests import redis_support
from tests.redis_support import ClusterGroup
from wsmanager.exceptions import ConfigurationError
from wsmanager.layers import RedisClusterChannelLayer
from wsmanager.observe._counters import Count, stats

pytestmark = [pytest.mark.redis]

shared_cluster = redis_support.shared_cluster  # one cluster for the tests that fail nothing over
redis_cluster = redis_support.redis_cluster  # a fresh cluster for the failover test

Make = Callable[..., RedisClusterChannelLayer]


def counted(count: Count) -> int:
    return stats().get(str(count), 0)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    """Await ``check()`` until it is true; the timeout only turns a hang into a failure."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():  # noqa: ASYNC110 - the condition is in Redis: no event to wait on
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {timeout} s") from None


@pytest.fixture
async def make(shared_cluster: ClusterGroup) -> AsyncIterator[Make]:
    """A factory of layers on the shared cluster (one per simulated process), all under
    one fresh prefix, closed afterwards."""
    prefix = f"wsmtest-{secrets.token_hex(4)}"
    made: list[RedisClusterChannelLayer] = []

    def factory(**options: Any) -> RedisClusterChannelLayer:
        made.append(RedisClusterChannelLayer(shared_cluster.url, prefix=prefix, **options))
        return made[-1]

    yield factory
    for layer in made:
        await layer.close()


async def channels_on_each_shard(layer: RedisClusterChannelLayer, group: ClusterGroup) -> dict[int, str]:
    """New channels of ``layer`` until one is served by each of the three primaries: by port."""
    by_owner: dict[int, str] = {}
    while len(by_owner) < 3:
        channel = await layer.new_channel("shards")
        by_owner.setdefault(group.owner(f"{layer.prefix}:{channel}"), channel)
    return by_owner


async def reaches(
    layer: RedisClusterChannelLayer,
    channel: str,
    publish: Callable[[], Awaitable[int | None]],
    marker: dict[str, Any],
    timeout: float = 60.0,
) -> None:
    """Publish until ``marker`` reaches ``channel`` of ``layer`` (after an outage, earlier
    attempts may be lost, raise, or arrive late: copies read before it are skipped)."""

    async def delivered() -> bool:
        try:
            await publish()
        except RedisError:
            return False  # the sender's cluster client has not caught up yet: again
        try:
            async with asyncio.timeout(0.5):
                while (await layer.receive(channel)) != marker:
                    pass  # an earlier attempt that did get through
        except TimeoutError:
            return False  # lost on the way: publish again
        return True

    await eventually(delivered, f"{marker} reached {channel}", timeout=timeout)


def subscribers(group: ClusterGroup, shard_channel: str) -> int:
    """How many connections are subscribed to ``shard_channel`` on the primary serving it."""
    with redis.Redis(port=group.owner(shard_channel), socket_timeout=2) as client:
        reply = client.execute_command("PUBSUB", "SHARDNUMSUB", shard_channel)
    return int(reply[1])


# -- channels ------------------------------------------------------------------------
async def test_a_message_sent_by_one_instance_is_received_by_another(make: Make) -> None:
    receiver, sender = make(), make()
    channel = await receiver.new_channel("wsmanager.node")
    assert channel.startswith("wsmanager.node.")
    await sender.send(channel, {"type": "hello", "n": 1})
    assert await receiver.receive(channel) == {"type": "hello", "n": 1}


async def test_channels_served_by_each_of_the_three_primaries_all_deliver(
    make: Make, shared_cluster: ClusterGroup
) -> None:
    receiver, sender = make(), make()
    by_owner = await channels_on_each_shard(receiver, shared_cluster)
    assert len(set(by_owner)) == 3
    for port, channel in by_owner.items():
        assert await sender.deliver(channel, {"port": port}) == 1
    for port, channel in by_owner.items():
        assert await receiver.receive(channel) == {"port": port}


async def test_msgpack_round_trip_keeps_bytes_and_every_json_type(make: Make) -> None:
    receiver, sender = make(), make()
    channel = await receiver.new_channel()
    message = {
        "type": "blob",
        "raw": b"\x00\xff\x80binary",
        "text": "caf\u00e9 \U0001f600",
        "int": -(2**40),
        "float": 1.5,
        "flags": [True, False, None],
        "nested": {"list": [1, "two", b"3", {"four": 4.0}], "empty": {}},
    }
    await sender.send(channel, message)
    got = await receiver.receive(channel)
    assert got == message
    assert isinstance(got["raw"], bytes) and isinstance(got["nested"]["list"][2], bytes)


async def test_messages_of_one_sender_to_one_channel_arrive_in_order(make: Make) -> None:
    receiver, sender = make(capacity=1000), make()
    channel = await receiver.new_channel()
    for i in range(500):
        await sender.send(channel, {"i": i})
    assert [(await receiver.receive(channel))["i"] for _ in range(500)] == list(range(500))


async def test_the_first_receive_of_a_named_channel_subscribes_it(make: Make) -> None:
    receiver, sender = make(), make()
    reading = asyncio.create_task(receiver.receive("jobs.thumbnails"))

    async def delivered() -> bool:
        return await sender.deliver("jobs.thumbnails", {"job": 7}) == 1

    await eventually(delivered, "the first receive subscribed the channel")
    assert await reading == {"job": 7}


async def test_a_send_nobody_receives_returns_0_and_counts_dropped_no_receiver(make: Make) -> None:
    layer = make()
    before = counted(Count.DROPPED_NO_RECEIVER)
    assert await layer.deliver("nobody.reads.this", {"x": 1}) == 0
    assert counted(Count.DROPPED_NO_RECEIVER) == before  # deliver() reports, it does not count
    await layer.send("nobody.reads.this", {"x": 1})  # not an error
    assert counted(Count.DROPPED_NO_RECEIVER) == before + 1


async def test_a_full_channel_drops_and_counts_dropped_channel_full(make: Make) -> None:
    receiver, sender = make(capacity=100, channel_capacity={"tight.*": 3}), make()
    tight = await receiver.new_channel("tight")
    roomy = await receiver.new_channel("roomy")
    before = counted(Count.DROPPED_CHANNEL_FULL)
    for i in range(5):
        assert await sender.deliver(tight, {"i": i}) == 1  # Redis handed each to the receiver...
        await sender.send(roomy, {"i": i})

    async def two_dropped() -> bool:
        return counted(Count.DROPPED_CHANNEL_FULL) == before + 2

    await eventually(two_dropped, "the receiver's queue of the tight channel overflowed")
    # ... whose queue kept the first three (the roomy channel kept all five).
    assert [(await receiver.receive(tight))["i"] for _ in range(3)] == [0, 1, 2]
    assert [(await receiver.receive(roomy))["i"] for _ in range(5)] == [0, 1, 2, 3, 4]
    assert counted(Count.DROPPED_CHANNEL_FULL) == before + 2
    await sender.send(tight, {"i": 5})  # room again
    assert await receiver.receive(tight) == {"i": 5}


async def test_a_cancelled_receive_keeps_the_channel_subscribed_and_loses_nothing(make: Make) -> None:
    receiver, sender = make(), make()
    channel = await receiver.new_channel()
    for _ in range(3):
        reading = asyncio.create_task(receiver.receive(channel))
        await asyncio.sleep(0)  # let it wait on the queue
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
    assert await sender.deliver(channel, {"after": "cancel"}) == 1
    assert await receiver.receive(channel) == {"after": "cancel"}


async def test_a_channel_nobody_receives_from_is_released_after_expiry(make: Make) -> None:
    receiver, sender = make(expiry=0.5), make()
    channel = await receiver.new_channel()
    before = counted(Count.DROPPED_NO_RECEIVER)
    assert await sender.deliver(channel, {"queued": True}) == 1
    held = 1  # messages the receiver queued and nobody received

    async def released() -> bool:
        nonlocal held
        reached = await sender.deliver(channel, {"late": True})
        held += reached
        return reached == 0

    await eventually(released, "the idle channel was unsubscribed")

    async def all_counted() -> bool:  # the last ones may still be on their way when it is released
        return counted(Count.DROPPED_NO_RECEIVER) == before + held

    await eventually(all_counted, "every message the released channel held was counted")
    # Receiving again subscribes it again.
    reading = asyncio.create_task(receiver.receive(channel))

    async def delivered() -> bool:
        return await sender.deliver(channel, {"again": True}) == 1

    await eventually(delivered, "receive subscribed the released channel again")
    assert await reading == {"again": True}


async def test_subscriptions_come_back_when_redis_closes_the_connections(
    make: Make, shared_cluster: ClusterGroup
) -> None:
    """Redis may drop a subscriber (CLIENT KILL, an output buffer limit): the layer
    reconnects and subscribes again, on every shard, without being re-created."""
    name = f"wsmtest-{secrets.token_hex(4)}"
    receiver, sender = make(client_name=name), make()  # client_name: an option for redis-py
    by_owner = await channels_on_each_shard(receiver, shared_cluster)
    killed = 0
    for port in by_owner:
        with redis.Redis(port=port, socket_timeout=2, decode_responses=True) as client:
            for info in client.client_list():
                if info.get("name") == name:
                    client.client_kill_filter(_id=info["id"])
                    killed += int(info.get("ssub", 0)) > 0
    assert killed == 3  # one subscriber connection per primary
    for port, channel in by_owner.items():
        marker = {"back": port}
        await reaches(receiver, channel, functools.partial(sender.deliver, channel, marker), marker)


# -- groups ----------------------------------------------------------------------------
async def test_group_send_reaches_members_in_two_instances_until_discarded(
    make: Make, shared_cluster: ClusterGroup
) -> None:
    first, second, sender = make(), make(), make()
    one, two = await first.new_channel(), await second.new_channel()
    also_one = await first.new_channel()
    await first.group_add("room", one)
    await first.group_add("room", also_one)
    await second.group_add("room", two)
    await sender.group_send("room", {"text": "hi all"})
    assert await first.receive(one) == {"text": "hi all"}
    assert await first.receive(also_one) == {"text": "hi all"}
    assert await second.receive(two) == {"text": "hi all"}

    shard = f"{first.prefix}:group:room"
    assert subscribers(shared_cluster, shard) == 2  # one subscription per instance
    await first.group_discard("room", one)
    await first.group_discard("room", also_one)

    async def only_second() -> bool:
        return subscribers(shared_cluster, shard) == 1

    await eventually(only_second, "the first instance left the group's shard channel")
    await sender.group_send("room", {"text": "second only"})
    assert await second.receive(two) == {"text": "second only"}
    # The first instance's channels are still theirs, without the group's message.
    await sender.send(one, {"direct": 1})
    assert await first.receive(one) == {"direct": 1}


async def test_group_send_to_a_group_without_members_is_not_counted(make: Make) -> None:
    layer = make()
    before = stats()
    await layer.group_send("empty-room", {"x": 1})
    assert stats() == before


async def test_flush_unsubscribes_every_channel_and_group_and_the_layer_works_after(
    make: Make, shared_cluster: ClusterGroup
) -> None:
    receiver, sender = make(), make()
    channel = await receiver.new_channel()
    await receiver.group_add("lobby", channel)
    await receiver.flush()

    async def gone() -> bool:
        return await sender.deliver(channel, {"x": 1}) == 0 and (
            subscribers(shared_cluster, f"{receiver.prefix}:group:lobby") == 0
        )

    await eventually(gone, "the flushed subscriptions ended")
    fresh = await receiver.new_channel()
    await sender.send(fresh, {"after": "flush"})
    assert await receiver.receive(fresh) == {"after": "flush"}


async def test_close_ends_the_subscriptions(make: Make) -> None:
    receiver, sender = make(), make()
    channel = await receiver.new_channel()
    await receiver.close()

    async def gone() -> bool:
        return await sender.deliver(channel, {"x": 1}) == 0

    await eventually(gone, "the closed layer's subscription ended")


# -- validation -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["", "has space", "semi;colon", "x" * 100, "two!bangs!"])
async def test_invalid_channel_names_raise_type_error(make: Make, name: str) -> None:
    layer = make()
    with pytest.raises(TypeError):
        await layer.send(name, {"x": 1})
    with pytest.raises(TypeError):
        await layer.receive(name)
    with pytest.raises(TypeError):
        await layer.group_add("room", name)


@pytest.mark.parametrize("name", ["", "has space", "with!bang", "x" * 100])
async def test_invalid_group_names_raise_type_error(make: Make, name: str) -> None:
    layer = make()
    with pytest.raises(TypeError):
        await layer.group_send(name, {"x": 1})
    with pytest.raises(TypeError):
        await layer.group_add(name, "some.channel")
    with pytest.raises(TypeError):
        await layer.group_discard(name, "some.channel")


async def test_a_message_that_is_not_a_dict_or_not_serialisable_raises_type_error(make: Make) -> None:
    layer = make()
    with pytest.raises(TypeError):
        await layer.send("some.channel", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await layer.group_send("room", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await layer.send("some.channel", {"x": object()})


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("redis://127.0.0.1:6379/0", {}),
        ("redis+cluster://127.0.0.1", {}),
        ("redis+cluster://127.0.0.1:7000/3", {}),
        ("redis+cluster://127.0.0.1:7000", {"no_such_option": 1}),
        ("redis+cluster://127.0.0.1:7000", {"password": "set in the URL"}),
        ("redis+cluster://127.0.0.1:7000", {"capacity": 0}),
        ("redis+cluster://127.0.0.1:7000", {"prefix": ""}),
        ("redis+cluster://127.0.0.1:7000", {"prefix": "{asgi}"}),
    ],
)
def test_a_bad_url_or_option_is_a_configuration_error(url: str, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RedisClusterChannelLayer(url, **options)


def test_the_layer_declares_the_groups_and_flush_extensions() -> None:
    layer = RedisClusterChannelLayer("redis+cluster://127.0.0.1:7000", group_expiry=10)
    assert set(layer.extensions) == {"groups", "flush"}


# -- event loops -------------------------------------------------------------------------
def test_the_layer_works_again_in_a_new_event_loop_after_the_first_closed(
    shared_cluster: ClusterGroup,
) -> None:
    """async_to_sync runs each call in an event loop of its own, closed afterwards."""
    layer = RedisClusterChannelLayer(shared_cluster.url, prefix=f"wsmtest-{secrets.token_hex(4)}")

    async def round_trip(n: int) -> dict[str, Any]:
        channel = await layer.new_channel()
        await layer.send(channel, {"n": n})
        return await layer.receive(channel)

    try:
        assert async_to_sync(round_trip)(1) == {"n": 1}
        assert async_to_sync(round_trip)(2) == {"n": 2}
        assert async_to_sync(layer.deliver)("nobody.here", {"n": 3}) == 0
    finally:
        async_to_sync(layer.close)()


# -- failover -------------------------------------------------------------------------------
def group_on(group: ClusterGroup, prefix: str, port: int) -> str:
    """A group name whose shard channel the primary on ``port`` serves."""
    for i in range(10_000):
        name = f"failover-{i}"
        if group.owner(f"{prefix}:group:{name}") == port:
            return name
    raise AssertionError(f"no group name lands on {port}")


@pytest.mark.timeout(150)
async def test_traffic_resumes_after_a_primary_dies_and_its_replica_is_promoted(
    redis_cluster: ClusterGroup,
) -> None:
    """A channel and a group of the killed shard work again by themselves, on the same
    layers; an instance that joins a group of that shard while it has no primary (its
    SSUBSCRIBE fails) gets the group's messages once the replica is promoted."""
    prefix = f"wsmtest-{secrets.token_hex(4)}"
    receiver = RedisClusterChannelLayer(redis_cluster.url, prefix=prefix)
    sender = RedisClusterChannelLayer(redis_cluster.url, prefix=prefix)
    joiner = RedisClusterChannelLayer(redis_cluster.url, prefix=prefix)
    try:
        by_owner = await channels_on_each_shard(receiver, redis_cluster)
        victim, channel = next(iter(by_owner.items()))
        early = group_on(redis_cluster, prefix, victim)
        late = f"{early}-late"
        while redis_cluster.owner(f"{prefix}:group:{late}") != victim:
            late += "x"
        await receiver.group_add(early, channel)
        await sender.send(channel, {"before": True})
        assert await receiver.receive(channel) == {"before": True}

        redis_cluster.kill(victim)
        joined = await joiner.new_channel()
        await joiner.group_add(late, joined)  # not raised: subscribed once the shard has a primary
        await asyncio.to_thread(redis_cluster.wait, redis_cluster.healed, "the replica was promoted")
        assert redis_cluster.owner(f"{prefix}:{channel}") != victim

        await reaches(receiver, channel, lambda: sender.deliver(channel, {"k": "channel"}), {"k": "channel"})
        await reaches(receiver, channel, lambda: sender.group_send(early, {"k": "early"}), {"k": "early"})
        await reaches(joiner, joined, lambda: sender.group_send(late, {"k": "late"}), {"k": "late"})
        # The other two shards deliver too (the killed one's channel was checked above).
        for port, other in by_owner.items():
            if other == channel:
                continue
            await sender.send(other, {"port": port})
            assert await receiver.receive(other) == {"port": port}
    finally:
        for layer in (receiver, sender, joiner):
            await layer.close()


@pytest.mark.timeout(150)
async def test_traffic_resumes_after_a_manual_failover_moves_a_shard(redis_cluster: ClusterGroup) -> None:
    """``CLUSTER FAILOVER`` (no node dies): Redis itself ends the subscriptions of the
    slots that move; the layer subscribes again on the new primary, by itself."""
    prefix = f"wsmtest-{secrets.token_hex(4)}"
    receiver = RedisClusterChannelLayer(redis_cluster.url, prefix=prefix)
    sender = RedisClusterChannelLayer(redis_cluster.url, prefix=prefix)
    try:
        by_owner = await channels_on_each_shard(receiver, redis_cluster)
        old, channel = next(iter(by_owner.items()))
        await sender.send(channel, {"before": True})
        assert await receiver.receive(channel) == {"before": True}
        await asyncio.to_thread(redis_cluster.promote_replica_of, old)
        assert redis_cluster.owner(f"{prefix}:{channel}") != old
        await reaches(receiver, channel, lambda: sender.deliver(channel, {"k": "moved"}), {"k": "moved"})

        # The sender learns the new primary too (a publish to the old one, now a replica,
        # is passed on within the shard but counted 0): its count comes back to 1.
        async def counted_by_the_new_primary() -> bool:
            reached = await sender.deliver(channel, {"k": "count"})
            while (got := await receiver.receive(channel)) != {"k": "count"}:
                assert got == {"k": "moved"}  # a late copy of an attempt above
            return reached == 1

        await eventually(counted_by_the_new_primary, "a publish counted by the new primary")
    finally:
        for layer in (receiver, sender):
            await layer.close()
