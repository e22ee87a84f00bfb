"""Redis Cluster: the cross-process suite (tests/e2e/test_scale_out.py) again on a
cluster of three primaries and three replicas that the tests start on loopback
ports, under daphne and uvicorn; and a primary killed (SIGKILL) during
cross-process traffic, its replica promoted (docs/scaling.md, "Redis Cluster").

The registry, journal and topic history go through redis-py's cluster client; the
processes' messages through :class:`wsmanager.layers.RedisClusterChannelLayer`
(sharded pub/sub), which the demo picks for a ``redis+cluster://`` URL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis

from tests import redis_support
from tests.e2e.client import Peer, chat_url, cluster_env, running
from tests.e2e.failover import DEADLINE, after_failover, before_failover, stats
from tests.e2e.test_scale_out import (
    test_a_burst_of_500_simultaneous_connects_all_succeed,
    test_broadcast_to_1000_sockets_of_one_process_drops_nothing,
    test_clean_shutdown_removes_sockets_at_once,
    test_invoke_crosses_processes_with_its_result,
    test_sigkill_prunes_the_dead_process_sockets,
    test_unknown_path_is_refused_on_every_process,
    test_views_of_one_process_reach_sockets_of_another,
    test_whisper_and_send_cross_processes,
    test_who_and_http_listing_see_the_whole_room,
)
from tests.redis_support import ClusterGroup
from tests.servers import DAPHNE_BURST_ARGS, ServerProcess, server_process

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

shared_cluster = redis_support.shared_cluster
redis_cluster = redis_support.redis_cluster

#: The cross-process tests collected here too, on the cluster (the group-expiry
#: test of test_scale_out is channels_redis's own and stays there).
ON_THE_CLUSTER = (
    test_whisper_and_send_cross_processes,
    test_who_and_http_listing_see_the_whole_room,
    test_views_of_one_process_reach_sockets_of_another,
    test_invoke_crosses_processes_with_its_result,
    test_sigkill_prunes_the_dead_process_sockets,
    test_clean_shutdown_removes_sockets_at_once,
    test_a_burst_of_500_simultaneous_connects_all_succeed,
    test_broadcast_to_1000_sockets_of_one_process_drops_nothing,
    test_unknown_path_is_refused_on_every_process,
)


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def server_kind(request: pytest.FixtureRequest) -> str:
    """The cluster is a deployment of Redis, not of the server: two servers suffice here."""
    kind: str = request.param
    return kind


@pytest.fixture(scope="module")
def redis_url(shared_cluster: ClusterGroup) -> str:
    """The cluster's ``redis+cluster://`` URL, for the tests that reach the registry directly."""
    return shared_cluster.url


@pytest.fixture(scope="module")
def cluster(redis_url: str, server_kind: str) -> Iterator[list[ServerProcess]]:
    """Two processes of ``server_kind`` on the Redis Cluster (a fresh key prefix)."""
    env = cluster_env(redis_url, DEMO_MAX_PER_ADDRESS="0", CHANNELS_GROUP_EXPIRY="86400")
    args = DAPHNE_BURST_ARGS if server_kind == "daphne" else ()
    with running([server_process(server_kind, env=env, extra_args=args) for _ in range(2)]) as servers:
        yield servers


async def test_the_registry_and_the_processes_messages_use_the_cluster(
    cluster: list[ServerProcess], shared_cluster: ClusterGroup
) -> None:
    """The registry's keys are in one slot of the cluster and the layer is the
    cluster layer: a whisper crosses processes, and the keyspace's slot holds the
    room's keys (read on the node that serves it)."""
    a = await Peer.open(chat_url(cluster[0], "slot"))
    b = await Peer.open(chat_url(cluster[1], "slot"))
    await a.call("whisper", b.id, "via the cluster")
    assert (await b.notification("message"))["params"]["text"] == "via the cluster"
    keyspace = "{" + cluster[0].env["WSMANAGER_REDIS_PREFIX"] + ":wsm}"
    with redis.Redis(port=shared_cluster.owner(keyspace), decode_responses=True) as node:
        assert node.sismember(f"{keyspace}:group:chat:room.slot", a.id)
        assert node.sismember(f"{keyspace}:group:chat:room.slot", b.id)
    await a.close()
    await b.close()


@pytest.mark.parametrize("victim", ["registry", "layer"])
async def test_a_primary_killed_during_traffic_fails_over(redis_cluster: ClusterGroup, victim: str) -> None:
    """Kill a primary during cross-process whispers and posts: the one serving the
    registry's slot, or the one serving the shard channel that the receiving
    process reads (the layer's subscription moves to the promoted replica). Open
    sockets keep answering, new handshakes succeed, whispers work again both ways,
    ``who`` and each process's socket count agree with the open sockets, and what
    was taken arrived: a message the layer could not hand to its process was
    refused, not answered as taken (only one that the killed primary took and had
    not yet passed on can be lost, and only before the failover was over)."""
    env = cluster_env(redis_cluster.url, WSMANAGER_HEARTBEAT="0.5", WSMANAGER_LOG="ERROR")
    keyspace = "{" + env["WSMANAGER_REDIS_PREFIX"] + ":wsm}"
    servers = [server_process("daphne", env=env), server_process("uvicorn", env=env)]
    with running(servers) as (one, two):
        room = "failover"
        traffic, posts, burst = await before_failover(one, two, room)
        a, b = traffic.a, traffic.b
        if victim == "registry":
            target = keyspace
        else:  # the demo's layer prefix, then the channel of b's process
            target = f"{env['WSMANAGER_REDIS_PREFIX']}:asgi:{(await stats(two))['node']}"
        killed_after = traffic.round
        killed = await asyncio.to_thread(redis_cluster.kill_owner, target)
        killed_at = time.monotonic()
        failed = 0
        deadline = time.monotonic() + DEADLINE
        while not (await traffic.one_round() and await asyncio.to_thread(redis_cluster.healed)):
            failed += 1
            assert time.monotonic() < deadline, f"no failover within {DEADLINE} s: {traffic.sent}"
            await asyncio.sleep(0.05)
        window = time.monotonic() - killed_at
        failed_over_at, failed_over_round = time.monotonic(), traffic.round
        assert redis_cluster.owner(target) != killed
        for _ in range(5):  # and keeps working
            assert await traffic.one_round()
        posts.stop = True
        await asyncio.gather(*burst)

        c, d = await after_failover(traffic, one, two, room)

        # Pub/sub keeps nothing: a message is handed to a subscribed process or
        # refused (the shard down: the publish fails; nobody subscribed yet: zero
        # receivers, counted dropped_no_receiver), and a refused hop is an error
        # to the sender. Only a message the killed primary had taken and not yet
        # written to its subscriber can be lost.
        taken = {text for text, outcome in traffic.sent.items() if outcome == "ok"}
        refused = {text: outcome for text, outcome in traffic.sent.items() if outcome != "ok"}
        got = {text for text in traffic.got if text.startswith("m")}
        lost = taken - got
        assert len(lost) <= 1 and all(killed_after < int(t[1:]) <= failed_over_round for t in lost), lost
        assert set(refused.values()) <= {"-32005", "4004"}, refused
        posts_taken = {text for text, (status, _) in posts.outcomes.items() if status == 202}
        posts_lost = posts_taken - traffic.got
        assert all(posts.outcomes[text][1] < failed_over_at for text in posts_lost), posts_lost
        post_codes = sorted({status for status, _ in posts.outcomes.values()})
        assert set(post_codes) <= {202, 404, 503}, post_codes
        counters = [(await stats(server))["counters"] for server in (one, two)]
        print(
            f"cluster failover ({victim}): {window:.1f} s, {failed} rounds with a failure, {len(refused)} "
            f"whispers refused ({sorted(set(refused.values()))}), {len(lost)} taken but lost, of "
            f"{len(traffic.sent)}; posts: {len(posts.outcomes)}, answers {post_codes}, "
            f"{len(posts_taken)} taken, {len(posts_lost)} taken but lost; counters {counters}"
        )
        for peer in (a, b, c, d):
            await peer.close()
