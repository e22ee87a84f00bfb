"""Connection recovery's bounds, in-process: what a resume reads, how often a session or an
address may resume, what parked sockets count, and one winner per token.

Same fixtures as tests/test_resumable.py (each test on the in-memory registry and on
Redis). Clocks are moved by hand where a limit refills; the real servers run the same
cases in tests/e2e/test_recovery_under_attack.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests import redis_support
from tests.test_resumable import (
    EVENTS,
    Client,
    RecoverHandler,
    _no_events,
    backend,
    manager,
    notes,
    resume_path,
)
from wsmanager import _recovery as recovery
from wsmanager import route, websocket_app
from wsmanager.node import get_node
from wsmanager.observe import _counters as counters
from wsmanager.registry import PARKED, get_registry
from wsmanager.testing import RpcCommunicator

redis_url = redis_support.redis_url
__all__ = ["_no_events", "backend"]  # fixtures, used by name

app = websocket_app(
    [
        route("ws/rec/<str:room>/", RecoverHandler),
        route("ws/session/<str:room>/", RecoverHandler, resume_rate_per_session=(0.1, 2.0)),
        route("ws/address/<str:room>/", RecoverHandler, resume_rate_per_address=(0.01, 1.0)),
        route("ws/capped/<str:room>/", RecoverHandler, max_connections_per_address=2),
    ],
    auth=False,
)


async def connect(path: str) -> Client:
    client = Client(app, path)
    accepted, detail = await client.connect()
    assert accepted, detail
    return client


async def closed_at_once(path: str) -> tuple[int, str]:
    """A connection the server accepts and closes before ``rpc.connected``: its code and reason."""
    client = Client(app, path)
    accepted, _ = await super(RpcCommunicator, client).connect()  # the handshake alone
    assert accepted
    output = await client.receive_output(2.0)
    assert output["type"] == "websocket.close", output
    return int(output["code"]), str(output.get("reason", ""))


def stat(name: str) -> int:
    return counters.stats().get(name, 0)


async def test_a_resume_from_offset_zero_reads_from_the_sessions_start_point_which_each_resume_moves(
    backend: str,
) -> None:
    """Traffic of another room while the socket was connected: the first resume from ``0-0``
    reads it (a gap the server cannot rule out); the next one from ``0-0`` does not."""
    client = await connect("/ws/rec/quiet/")
    talker = await connect("/ws/rec/busy/")
    for i in range(30):
        await talker.call("say", f"m{i}")
    await notes(talker, 30)
    await client.drop()
    before = stat("journal_read")
    back = await connect(resume_path("/ws/rec/quiet/", client.token, "0-0"))
    assert back.hello["params"]["recovered"] is True, back.hello
    first = stat("journal_read") - before
    assert first >= 30
    await back.drop()
    before = stat("journal_read")
    again = await connect(resume_path("/ws/rec/quiet/", back.token, "0-0"))
    assert again.hello["params"]["recovered"] is True, again.hello
    assert stat("journal_read") - before <= 2  # the welcome_back its on_resume sent, no more
    await again.disconnect()
    await talker.disconnect()


async def test_a_session_over_its_resume_rate_is_told_to_try_again_and_keeps_its_token(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two resumes in a row (its burst), then 1013 "too many resumes" with nothing changed;
    once the clock has moved on (it moves only when told to), the same token resumes."""
    now = [recovery.time.time()]
    monkeypatch.setattr(recovery.time, "time", lambda: now[0])
    session = await connect("/ws/session/s/")
    for _ in range(2):
        await session.drop()
        session = await connect(resume_path("/ws/session/s/", session.token, session.offset))
        assert session.hello["params"]["recovered"] is True, session.hello
    await session.drop()
    assert await closed_at_once(resume_path("/ws/session/s/", session.token, session.offset)) == (
        1013,
        "too many resumes",
    )
    assert stat("resume_throttled") == 1
    assert await get_registry().nodes_of(RecoverHandler.handler_name, [session.id]) == {PARKED: [session.id]}
    now[0] += 10  # 0.1 per second: one more resume, within the 30 s window
    back = await connect(resume_path("/ws/session/s/", session.token, session.offset))
    assert back.id == session.id and back.hello["params"]["recovered"] is True, back.hello
    await back.disconnect()


async def test_an_address_over_its_resume_rate_is_told_to_try_again(backend: str) -> None:
    first, second = await connect("/ws/address/a/"), await connect("/ws/address/a/")
    await first.drop()
    await second.drop()
    back = await connect(resume_path("/ws/address/a/", first.token, first.offset))
    assert back.hello["params"]["recovered"] is True
    throttled = resume_path("/ws/address/a/", second.token, second.offset)
    assert await closed_at_once(throttled) == (1013, "too many resumes")
    for bucket in recovery._address_buckets.values():  # its clock, 200 s on: two more resumes
        bucket._last -= 200
    again = await connect(throttled)
    assert again.id == second.id and again.hello["params"]["recovered"] is True, again.hello
    await back.disconnect()
    await again.disconnect()


async def test_parked_sockets_count_toward_the_address_cap_and_the_oldest_is_released_first(
    backend: str,
) -> None:
    """Cap 2: two sockets dropped (parked), two newcomers release them oldest first (each
    announced as left, its token dead), a third newcomer finds only open ones: 4429."""
    first, second = await connect("/ws/capped/c/"), await connect("/ws/capped/c/")
    await first.drop()
    await second.drop()
    newcomer = await connect("/ws/capped/c/")
    assert not await manager.aexists(first.id) and await manager.aexists(second.id)
    assert ("left", f"socket:{first.id}") in EVENTS and stat("parked_released") == 1
    other = await connect("/ws/capped/c/")
    assert not await manager.aexists(second.id)
    assert await closed_at_once("/ws/capped/c/") == (4429, "too many connections")
    await other.disconnect()
    dead = await connect(resume_path("/ws/capped/c/", first.token, first.offset))  # the freed place
    assert dead.id != first.id and dead.hello["params"]["recovery_failed"] == "unknown"
    await dead.disconnect()
    await newcomer.disconnect()


async def test_a_resume_takes_the_place_of_its_own_parked_session(backend: str) -> None:
    """At the cap with its own session parked: the resume needs no one else's place."""
    first, second = await connect("/ws/capped/o/"), await connect("/ws/capped/o/")
    await first.drop()
    back = await connect(resume_path("/ws/capped/o/", first.token, first.offset))
    assert back.id == first.id and back.hello["params"]["recovered"] is True
    assert stat("parked_released") == 0
    assert await closed_at_once("/ws/capped/o/") == (4429, "too many connections")
    await back.disconnect()
    await second.disconnect()


async def test_of_resumes_racing_for_one_token_here_one_wins_and_keeps_its_live_frames(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six resumes of one token, all in the claim at once, claiming in the order they came:
    the losers never take the id from the winner (before, each attached before its claim,
    so the later ones evicted the winner, and the last one's undo left nobody holding the id)."""
    victim = await connect("/ws/rec/race/")
    await victim.drop()
    registry = get_registry()
    real_claim, turn = registry.claim, asyncio.Condition()
    arrived, served = [0], [-1]

    async def claim_in_arrival_order(expected: Any, new: Any) -> Any:
        async with turn:
            me = arrived[0]
            arrived[0] += 1
            turn.notify_all()
            await turn.wait_for(lambda: arrived[0] == 6 and served[0] == me - 1)
        try:
            return await real_claim(expected, new)
        finally:
            async with turn:
                served[0] = me
                turn.notify_all()

    monkeypatch.setattr(registry, "claim", claim_in_arrival_order)
    racers = [Client(app, resume_path("/ws/rec/race/", victim.token, victim.offset)) for _ in range(6)]
    results: list[Any] = await asyncio.gather(*(r.connect() for r in racers))
    assert all(accepted for accepted, _ in results)
    winners = [r for r in racers if r.hello["params"].get("recovered") is True]
    assert [w.id for w in winners] == [victim.id]
    assert victim.id in get_node().sockets
    await manager.anotify(victim.id, "live", 1)
    assert [n["method"] for n in await notes(winners[0], 2)] == ["welcome_back", "live"]
    assert stat("dropped_unknown") == 0
    for racer in racers:
        await racer.disconnect()


@pytest.mark.parametrize(
    "limits",
    [
        {"resume_rate_per_session": (0.0, 5.0)},
        {"resume_rate_per_address": (5.0, 0.5)},
        {"resume_rate_per_address": (5.0,)},
        {"recovery_max_read": 0},
    ],
)
def test_nonsense_limits_are_refused_when_a_socket_is_made(limits: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RecoverHandler(**limits)
