"""Connection recovery at its edges: the races and corner cases a second reading found.

Each test names the behaviour it keeps: a half-open old connection that
closes late, a process taken for dead, a quiet socket in a busy handler, a
resume at another route, the replay's margin and bounds, a recovery that a
route alone turned on. Same fixtures as tests/test_resumable.py.
"""

from __future__ import annotations

import time
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
    opened,
    resume_path,
)
from tests.users import with_user
from wsmanager import RpcHandler, route, rpc, websocket_app
from wsmanager import _recovery as recovery
from wsmanager.node import get_node
from wsmanager.registry import PARKED, get_journal, get_registry
from wsmanager.registry import _journal as journal

redis_url = redis_support.redis_url
__all__ = ["_no_events", "backend"]  # fixtures, used by name


async def settle(client: Client) -> list[dict[str, Any]]:
    got = []
    while not await client.receive_nothing(0.2):
        got.append(await client.next_notification())
    return got


@pytest.mark.parametrize("code", [1006, 1000])
async def test_a_half_open_old_connection_closing_after_a_resume_here_leaves_the_session_alone(
    backend: str, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """The server notices the old connection's end only after the new one claimed the
    session on the same process: parking (1006) or releasing (1000) it must not touch
    the resumed session."""
    old = await opened("/ws/rec/ha/")
    registry = get_registry()
    real_claim = registry.claim

    async def claim_then_the_old_one_ends(expected: Any, new: Any) -> Any:
        result = await real_claim(expected, new)
        await old.send_input({"type": "websocket.disconnect", "code": code})
        await old.wait(10)  # the old connection's end is handled in full before the resume goes on
        return result

    monkeypatch.setattr(registry, "claim", claim_then_the_old_one_ends)
    new = await opened(resume_path("/ws/rec/ha/", old.token, old.offset))
    monkeypatch.setattr(registry, "claim", real_claim)
    assert new.hello["params"]["recovered"] is True
    assert await registry.nodes_of(RecoverHandler.handler_name, [new.id]) == {get_node().id: [new.id]}
    await manager.anotify(new.id, "still", "here")
    assert [n["method"] for n in await settle(new)] == ["welcome_back", "still"]
    assert ("left", f"socket:{new.id}") not in EVENTS
    await new.disconnect()


async def test_a_takeover_detaches_the_old_connection_before_the_journal_is_read(backend: str) -> None:
    """Another process resumed the session: once this process has the takeover, its
    own sends no longer go to the stale connection, which closes with 4409."""
    old = await opened("/ws/rec/tk/")
    registry = get_registry()
    info = await registry.get(RecoverHandler.handler_name, old.id)
    assert info is not None
    claim = await registry.claim(info, info.with_changes(node="wsmanager.node.other!x", resume_key="n" * 64))
    assert claim.outcome == "ok"
    node = get_node()
    await node._handle({"type": "wsmanager.takeover", "id": old.id, "key": "wrong"})
    assert node.sockets.get(old.id) is not None  # a stale or forged takeover does nothing
    await node._handle({"type": "wsmanager.takeover", "id": old.id, "key": info.resume_key})
    assert old.id not in node.sockets
    closed = await old.receive_output(2.0)
    assert closed == {"type": "websocket.close", "code": 4409, "reason": "resumed elsewhere"}
    assert (await registry.get(RecoverHandler.handler_name, old.id)) is not None  # left alone


@pytest.mark.redis
async def test_a_socket_parked_while_open_here_is_claimed_back_by_the_heartbeat(redis_url: str) -> None:
    """A process taken for dead (a long pause): its open sockets were parked by a sweeper;
    its next reconciliation routes them back to it, with no presence change."""
    async with redis_support.redis_registry(redis_url):
        client = await opened("/ws/rec/cb/")
        node, registry = get_node(), get_registry()
        await registry.remove_node(node.id)  # what a sweeper does to a node it thinks died
        assert await registry.nodes_of(RecoverHandler.handler_name, [client.id]) == {PARKED: [client.id]}
        await node.upkeep._reconcile(registry)
        assert await registry.nodes_of(RecoverHandler.handler_name, [client.id]) == {node.id: [client.id]}
        await manager.anotify(client.id, "hello", 1)
        assert [n["method"] for n in await settle(client)] == ["hello"]
        assert await registry.expire_parked() == 0
        assert [("joined", f"socket:{client.id}")] == EVENTS
        await client.disconnect()


@pytest.mark.parametrize("backend", ["memory"], indirect=True)  # its clock can be moved; Redis's not
async def test_a_quiet_socket_resumes_though_other_rooms_traffic_was_trimmed(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its offset is old because nothing was addressed to it; what was trimmed was older
    than its drop (minus the in-flight allowance), so nothing it needed is gone."""
    real = time.time
    monkeypatch.setattr(journal.time, "time", lambda: real() - 100)
    client = await opened("/ws/rec/q1/")
    peer = await opened("/ws/rec/q2/")
    await peer.call("say", "in another room, long ago")
    await notes(peer, 1)
    monkeypatch.setattr(journal.time, "time", real)
    await get_journal().trim(RecoverHandler.handler_name, int((real() - 20) * 1000))  # the periodic trim
    await client.drop()
    back = await opened(resume_path("/ws/rec/q1/", client.token, client.offset))
    assert back.id == client.id and back.hello["params"]["recovered"] is True, back.hello
    await back.disconnect()
    await peer.disconnect()


async def test_a_resume_at_another_route_is_refused(backend: str) -> None:
    """The session keeps its room; authorize() saw the new URL's: that must be the same."""
    client = await opened("/ws/rec/secret/")
    await client.drop()
    elsewhere = await opened(resume_path("/ws/rec/public/", client.token, client.offset))
    assert elsewhere.id != client.id and elsewhere.hello["params"]["recovery_failed"] == "refused"
    assert "room.public" in (await manager.aget(elsewhere.id)).groups
    await elsewhere.disconnect()


async def test_the_replay_holds_nothing_from_before_the_session_began(backend: str) -> None:
    peer = await opened("/ws/rec/sb/")
    await peer.call("say", "before you came")
    await notes(peer, 1)
    client = await opened("/ws/rec/sb/")
    await peer.call("say", "after")
    (seen,) = await notes(client, 1)
    await client.drop()
    back = await opened(resume_path("/ws/rec/sb/", client.token, seen["offset"]))
    said = [n.get("params") for n in await settle(back) if n["method"] == "said"]
    assert said == [["after"]]  # the margin's duplicate, not the message of before
    await back.disconnect()
    await peer.disconnect()


async def test_the_margin_counts_toward_the_replay_bounds(backend: str) -> None:
    """A client cannot make a resume replay more than the bounds by giving a recent offset."""
    client = await opened("/ws/rec/mb/")
    peer = await opened("/ws/rec/mb/")
    for _ in range(40):  # recovery_max_messages = 5; the margin holds all 40
        await peer.call("say", "x" * 1000)
    last = (await notes(client, 40))[-1]
    await client.drop()
    back = await opened(resume_path("/ws/rec/mb/", client.token, last["offset"]))
    assert back.hello["params"]["recovery_failed"] == "overflow"
    assert len(await settle(back)) <= 5
    await back.disconnect()
    await peer.disconnect()


async def test_an_offset_the_journal_never_gave_out_is_refused(backend: str) -> None:
    client = await opened("/ws/rec/fo/")
    await client.drop()
    future = f"{int(time.time() * 1000) + 10**9}-0"
    back = await opened(resume_path("/ws/rec/fo/", client.token, future))
    assert back.id != client.id and back.hello["params"]["recovery_failed"] == "refused"
    await back.disconnect()


async def test_disconnecting_a_parked_socket_announces_its_departure_once(backend: str) -> None:
    client = await opened("/ws/rec/dp/")
    peer = await opened("/ws/rec/dp/")
    await client.drop()
    await manager.adisconnect(client.id)
    assert not await manager.aexists(client.id)
    assert EVENTS.count(("left", f"socket:{client.id}")) == 1
    await peer.disconnect()


@pytest.mark.redis
async def test_a_redis_gap_longer_than_the_journal_is_lost_not_cut_short(redis_url: str) -> None:
    async with redis_support.redis_registry(redis_url):
        kept = get_registry().make_journal(10)
        first = await kept.append("h", "all", (), '{"n":0}')
        for i in range(49):
            await kept.append("h", "all", (), f'{{"n":{i + 1}}}')
        read = await kept.read("h", first)
        assert read.lost or len(read.entries) == 49


class RouteOnly(RpcHandler):
    """Recovery only where its route turns it on."""

    handler_name = "tests.recovery.routeonly"

    async def on_connect(self) -> None:
        await self.join("g")

    @rpc
    async def say(self, text: str) -> None:
        await self.manager.anotify_group("g", "said", text)


route_app = with_user(websocket_app([route("ws/ro/", RouteOnly, recovery_window=30.0)], auth=False))


@pytest.mark.redis
async def test_a_notification_a_sender_did_not_journal_makes_a_parked_socket_start_afresh(
    redis_url: str,
) -> None:
    """A process that did not know a route turned recovery on sends unjournaled: the
    parked socket can no longer resume whole, so it does not resume at all."""
    async with redis_support.redis_registry(redis_url):
        client = Client(route_app, "/ws/ro/")
        assert (await client.connect())[0]
        peer = Client(route_app, "/ws/ro/")
        assert (await peer.connect())[0]
        await client.drop()
        registry = get_registry()
        async with registry._redis("test") as r:  # type: ignore[attr-defined]
            await r.delete(registry._journal_key("journal-on", RouteOnly.handler_name))  # type: ignore[attr-defined]
        recovery.reset()
        await peer.call("say", "not journaled")
        back = Client(route_app, resume_path("/ws/ro/", client.token, client.offset))
        assert (await back.connect())[0]
        params = back.hello["params"]
        assert params["recovered"] is False and params["recovery_failed"] in {"expired", "unknown"}
        await back.disconnect()
        await peer.disconnect()


async def test_a_sockets_window_is_noted_for_senders_without_its_class(backend: str) -> None:
    """A fresh or resumed socket notes its window; senders without the class then journal."""
    client = Client(route_app, "/ws/ro/")
    assert (await client.connect())[0]
    assert await get_journal().enabled(RouteOnly.handler_name) == 30.0
    recovery.reset()
    assert await recovery.journaled(RouteOnly.handler_name)
    await client.disconnect()
