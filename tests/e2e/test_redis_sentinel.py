"""Redis Sentinel: two server processes (daphne and uvicorn) on a primary, one
replica and three sentinels that the test starts on free loopback ports; the
primary is killed (SIGKILL) during cross-process traffic and the replica is
promoted (docs/scaling.md, "Redis Sentinel").
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests import redis_support
from tests.e2e.client import cluster_env, running
from tests.e2e.failover import DEADLINE, after_failover, before_failover, stats
from tests.redis_support import SentinelGroup
from tests.servers import server_process

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

sentinels = redis_support.sentinels  # the fixture, made visible to this module


async def test_primary_killed_during_traffic_fails_over(sentinels: SentinelGroup) -> None:
    """Kill the primary during cross-process whispers: open sockets keep answering,
    new handshakes succeed once the replica is promoted, whispers work again, and
    ``who`` and each process's socket count agree with the open sockets."""
    sentinels.wait(sentinels.ready, "sentinels see each other and the replica")
    env = cluster_env(sentinels.url, WSMANAGER_HEARTBEAT="0.5", WSMANAGER_LOG="ERROR")
    servers = [server_process("daphne", env=env), server_process("uvicorn", env=env)]
    with running(servers) as (one, two):
        room = "failover"
        traffic, posts, burst = await before_failover(one, two, room)
        a, b = traffic.a, traffic.b
        killed_after = traffic.round
        sentinels.kill_primary()
        killed_at = time.monotonic()
        failed = 0
        # Traffic through the failover, until both directions work again and the
        # sentinels agree on the new primary.
        deadline = time.monotonic() + DEADLINE
        while not (await traffic.one_round() and sentinels.promoted()):
            failed += 1
            assert time.monotonic() < deadline, f"no failover within {DEADLINE} s: {traffic.sent}"
            await asyncio.sleep(0.05)
        window = time.monotonic() - killed_at
        failed_over_at = time.monotonic()
        for _ in range(5):  # and keeps working
            assert await traffic.one_round()
        posts.stop = True
        await asyncio.gather(*burst)

        # New handshakes on both processes.
        c, d = await after_failover(traffic, one, two, room)
        posts_lost = {text for text, (status, _) in posts.outcomes.items() if status == 202} - traffic.got
        # Whatever the server took after the failover arrived; only posts taken around
        # the kill can be lost (queued on the old primary, not yet replicated).
        assert all(posts.outcomes[text][1] < failed_over_at for text in posts_lost), posts_lost
        post_codes = sorted({status for status, _ in posts.outcomes.values()})
        # Taken, unknown socket (forgotten until its heartbeat), registry unavailable:
        # never a 500 or a dropped connection.
        assert set(post_codes) <= {202, 404, 503}, post_codes
        got = {text for text in traffic.got if text.startswith("m")}

        # What the window cost: every whisper the server took arrived, except those
        # in the channel layer's queue on the killed primary that the replica had
        # not received (Redis replicates asynchronously); the refused ones were
        # answered with an error and never sent: -32005 (the registry unreachable)
        # until the replica is promoted, then 4004 (no such member) while the
        # recipient is missing from the registry: its node's liveness key expired
        # during the outage (node_ttl 0.75 s here) or the replica missed its entry,
        # until its process's heartbeat adds it again (counted as "restored").
        taken = {text for text, outcome in traffic.sent.items() if outcome == "ok"}
        refused = {text: outcome for text, outcome in traffic.sent.items() if outcome != "ok"}
        assert got <= taken
        lost = taken - got
        assert all(int(text[1:]) > killed_after for text in lost), lost
        assert set(refused.values()) <= {"-32005", "4004"}, refused
        counters = [(await stats(server))["counters"] for server in (one, two)]
        if "4004" in refused.values():
            assert sum(c.get("restored", 0) for c in counters) >= 1, counters
        print(
            f"failover: {window:.1f} s, {failed} rounds with a failure, {len(refused)} whispers refused "
            f"({sorted(set(refused.values()))}), {len(lost)} taken but lost {sorted(lost)}, "
            f"of {len(traffic.sent)}; posts: {len(posts.outcomes)}, answers {post_codes}, "
            f"{posts.taken()} taken, {len(posts_lost)} taken but lost; counters {counters}"
        )
        for peer in (a, b, c, d):
            await peer.close()
