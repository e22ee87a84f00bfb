"""Connection recovery (wsmanager._recovery, wsmanager.handlers._resumable), in-process.

Each test runs on the in-memory registry and on Redis (``backend``). A drop
is a ``websocket.disconnect`` with code 1006 (no close frame); a resume is a
new connection whose URL carries the token and offset of ``rpc.connected``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import override_settings

from tests import redis_support
from tests.users import with_user
from wsmanager import (
    ConnectionInfo,
    Member,
    RpcHandler,
    SocketNotFound,
    SocketParked,
    route,
    rpc,
    websocket_app,
)
from wsmanager.node import get_node
from wsmanager.observe import _counters as counters
from wsmanager.registry import PARKED, get_registry
from wsmanager.registry._journal import key_of
from wsmanager.testing import RpcCommunicator
from wsmanager_client import encodings as wire

redis_url = redis_support.redis_url

EVENTS: list[tuple[str, str]] = []


class RecoverHandler(RpcHandler):
    """Joins ``room.<room>``; ``say`` notifies the room; recovery on, small bounds."""

    handler_name = "tests.recovery.room"
    recovery_window = 30.0
    recovery_max_messages = 5

    async def on_connect(self) -> None:
        await self.join(f"room.{self.info.path_kwargs['room']}")
        await self.manager.aupdate_meta(self.id, joined_in="on_connect")

    async def on_resume(self) -> None:
        await self.send_notification("welcome_back", self.id)

    @rpc
    async def say(self, text: str) -> None:
        await self.manager.anotify_group(f"room.{self.info.path_kwargs['room']}", "said", text)

    @rpc
    async def tell_me(self, text: str) -> None:
        await self.send_notification("told", text)

    @classmethod
    async def on_presence(cls, group: str, event: str, member: Member) -> None:
        EVENTS.append((event, member.key))


class PlainHandler(RpcHandler):
    """No recovery."""

    handler_name = "tests.recovery.plain"


application = with_user(
    websocket_app(
        [
            route("ws/rec/<str:room>/", RecoverHandler),
            route("ws/short/<str:room>/", RecoverHandler, recovery_window=0.3),
            route("ws/plain/", PlainHandler),
            route("ws/strict/<str:room>/", RecoverHandler, allowed_origins=["https://ok.example"]),
        ],
        auth=False,
    )
)
manager = RecoverHandler.manager


class Client(RpcCommunicator):
    """Reads the recovery token and offset of its ``rpc.connected``."""

    @property
    def token(self) -> str:
        return str(self.hello["params"]["recovery"]["token"])

    @property
    def offset(self) -> str:
        return str(self.hello["params"]["recovery"]["offset"])

    async def drop(self) -> None:
        """The connection ends without a close frame."""
        await self.send_input({"type": "websocket.disconnect", "code": 1006})
        await self.wait(1.0)


async def opened(path: str, origin: str = "") -> Client:
    headers = [(b"origin", origin.encode())] if origin else None
    client = Client(application, path, headers=headers)
    accepted, detail = await client.connect()
    assert accepted, detail
    return client


def resume_path(base: str, token: str, offset: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}{urlencode({'wsm_resume': token, 'wsm_offset': offset})}"


async def notes(client: RpcCommunicator, n: int) -> list[dict[str, Any]]:
    return [await client.next_notification() for _ in range(n)]


async def nothing_more(client: RpcCommunicator) -> None:
    assert await client.receive_nothing(0.2), "an unexpected frame arrived"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    EVENTS.clear()
    if request.param == "memory":
        with override_settings(WSMANAGER={"HEARTBEAT_INTERVAL": 0.2}):
            yield "memory"
        return
    async with redis_support.redis_registry(request.getfixturevalue("redis_url")):
        yield "redis"


@pytest.fixture(autouse=True)
def _no_events() -> Iterator[None]:
    EVENTS.clear()
    yield
    EVENTS.clear()


async def test_a_recoverable_socket_is_offered_a_token_and_a_journal_position(backend: str) -> None:
    client = await opened("/ws/rec/a/")
    recovery = client.hello["params"]["recovery"]
    assert recovery["token"].startswith(client.id + ".")
    assert recovery["window"] == 30.0
    key_of(recovery["offset"])  # a well-formed offset
    entry = await manager.aget(client.id)
    secret = recovery["token"].split(".", 1)[1]
    assert entry.recovery == 30.0 and entry.resume_key and secret not in entry.resume_key
    await client.disconnect()


async def test_a_handler_without_recovery_offers_nothing(backend: str) -> None:
    client = await opened("/ws/plain/")
    assert client.hello["params"] == {"id": client.id}
    await client.disconnect()


async def test_notifications_carry_their_journal_offset_in_order(backend: str) -> None:
    client = await opened("/ws/rec/b/")
    await client.call("say", "one")
    await client.call("tell_me", "two")
    first, second = await notes(client, 2)
    assert (first["method"], second["method"]) == ("said", "told")
    assert key_of(client.offset) < key_of(first["offset"]) < key_of(second["offset"])
    await client.disconnect()


async def test_send_notification_says_false_once_dropped_where_the_manager_raises(backend: str) -> None:
    """The socket's own ``send_notification`` reports a drop as False (counted); the deprecated
    ``notify`` warns and does the same; ``Manager.anotify`` raises ``SocketNotFound`` instead."""
    client = await opened("/ws/plain/")
    sock = get_node().sockets[client.id]
    assert await sock.send_notification("one", 1) is True
    with pytest.warns(DeprecationWarning, match="send_notification"):
        assert await sock.notify("two", k=2) is True
    assert [(n["method"], n["params"]) for n in await notes(client, 2)] == [("one", [1]), ("two", {"k": 2})]
    with pytest.raises(TypeError):
        await sock.send_notification("both", 1, k=2)
    await client.disconnect(code=1000)
    before = counters.stats().get("dropped_closed", 0)
    assert await sock.send_notification("late") is False
    assert counters.stats().get("dropped_closed", 0) == before + 1
    with pytest.raises(SocketNotFound):
        await PlainHandler.manager.anotify(client.id, "late")


async def test_a_drop_parks_the_socket_and_everything_sent_meanwhile_is_replayed_once_in_order(
    backend: str,
) -> None:
    client = await opened("/ws/rec/c/?user=7")
    peer = await opened("/ws/rec/c/")
    await client.call("say", "before")
    (before,) = await notes(client, 1)
    await notes(peer, 1)
    sid = client.id
    await client.drop()

    routes = await get_registry().nodes_of(RecoverHandler.handler_name, [sid])
    assert routes == {PARKED: [sid]}
    assert sid in await manager.agroup_members("room.c")
    assert [m.key for m in await manager.apresence("room.c")] == ["7", f"socket:{peer.id}"]

    await peer.call("say", "to the room")
    await manager.anotify(sid, "whisper", "by id")
    assert await manager.anotify_user(7, "for_user", "by user") == 1
    await manager.anotify_all("everyone", exclude=[peer.id])
    with pytest.raises(SocketParked):
        await manager.ainvoke(sid, "anything", timeout=1)
    with pytest.raises(SocketParked):
        await manager.asend(sid, "a raw frame is not recoverable")
    assert counters.stats()["kept_for_parked"] == 4

    back = await opened(resume_path("/ws/rec/c/?user=7", client.token, before["offset"]))
    assert back.id == sid
    params = back.hello["params"]
    assert params["recovered"] is True and params["replayed"] == 4
    assert params["recovery"]["token"] != client.token
    (again,) = await notes(back, 1)  # the reordering margin: the client drops what it has
    assert again["offset"] == before["offset"]
    replayed = await notes(back, 4)
    assert [(n["method"], n.get("params")) for n in replayed] == [
        ("said", ["to the room"]),
        ("whisper", ["by id"]),
        ("for_user", ["by user"]),
        ("everyone", []),
    ]
    offsets = [key_of(n["offset"]) for n in replayed]
    assert offsets == sorted(offsets) and len(set(offsets)) == 4
    (welcome,) = await notes(back, 1)  # on_resume's frame comes after the replay
    assert welcome["method"] == "welcome_back"
    await nothing_more(back)

    entry = await manager.aget(sid)
    assert entry.groups == {"room.c"} and entry.meta == {"joined_in": "on_connect"}
    assert entry.node == get_node().id
    assert [("joined", "7"), ("joined", f"socket:{peer.id}")] == EVENTS  # no left, no second joined
    assert counters.stats()["resumed"] == 1 and counters.stats()["parked"] == 1

    await peer.call("say", "live")
    (live,) = await notes(back, 1)
    assert live["params"] == ["live"] and key_of(live["offset"]) > offsets[-1]
    await back.disconnect()
    await peer.disconnect()


async def test_the_replay_starts_a_little_before_the_offset_given_and_the_client_drops_what_it_has(
    backend: str,
) -> None:
    """Notifications just before the client's offset are sent again (reordering margin)."""
    client = await opened("/ws/rec/d/")
    await client.call("say", "seen")
    (seen,) = await notes(client, 1)
    await client.drop()
    back = await opened(resume_path("/ws/rec/d/", client.token, seen["offset"]))
    assert back.hello["params"]["replayed"] == 0  # missed: none
    (again,) = await notes(back, 1)
    assert again["offset"] == seen["offset"]  # a duplicate the client recognises by its offset
    await back.disconnect()


async def test_a_forged_token_gets_a_fresh_socket_and_is_told(backend: str) -> None:
    client = await opened("/ws/rec/e/")
    await client.drop()
    forged = client.token[:-4] + ("AAAA" if not client.token.endswith("AAAA") else "BBBB")
    other = await opened(resume_path("/ws/rec/e/", forged, client.offset))
    params = other.hello["params"]
    assert other.id != client.id
    assert params["recovered"] is False and params["recovery_failed"] == "unknown"
    assert "token" in params["recovery"]
    assert counters.stats()["resume_refused"] == 1
    assert await get_registry().nodes_of(RecoverHandler.handler_name, [client.id]) == {PARKED: [client.id]}
    await other.disconnect()


async def test_another_users_token_gets_a_fresh_socket(backend: str) -> None:
    client = await opened("/ws/rec/f/?user=1")
    await client.drop()
    thief = await opened(resume_path("/ws/rec/f/?user=2", client.token, client.offset))
    assert thief.id != client.id
    assert thief.hello["params"]["recovery_failed"] == "refused"
    anonymous = await opened(resume_path("/ws/rec/f/", client.token, client.offset))
    assert anonymous.hello["params"]["recovery_failed"] == "refused"
    owner = await opened(resume_path("/ws/rec/f/?user=1", client.token, client.offset))
    assert owner.id == client.id and owner.hello["params"]["recovered"] is True, owner.hello
    for c in (thief, anonymous, owner):
        await c.disconnect()


async def test_a_token_works_once(backend: str) -> None:
    client = await opened("/ws/rec/g/")
    await client.drop()
    back = await opened(resume_path("/ws/rec/g/", client.token, client.offset))
    await back.drop()
    again = await opened(resume_path("/ws/rec/g/", client.token, client.offset))
    assert again.id != client.id and again.hello["params"]["recovery_failed"] == "unknown"
    await again.disconnect()


async def test_more_missed_than_the_bounds_fails_the_resume_as_a_whole(backend: str) -> None:
    client = await opened("/ws/rec/h/")
    peer = await opened("/ws/rec/h/")
    await client.drop()
    for i in range(6):  # recovery_max_messages = 5
        await peer.call("say", f"m{i}")
    back = await opened(resume_path("/ws/rec/h/", client.token, client.offset))
    assert back.id != client.id
    assert back.hello["params"]["recovery_failed"] == "overflow"
    assert counters.stats()["resume_overflowed"] == 1
    await nothing_more(back)  # nothing of the gap: a fresh socket, told so
    assert not await manager.aexists(client.id)
    assert ("left", f"socket:{client.id}") in EVENTS
    await back.disconnect()
    await peer.disconnect()


async def test_a_socket_that_does_not_come_back_leaves_once_when_its_window_ends(backend: str) -> None:
    client = await opened("/ws/short/i/")
    peer = await opened("/ws/short/i/")  # keeps a node (and its heartbeat) alive
    await client.drop()
    assert ("left", f"socket:{client.id}") not in EVENTS
    deadline = asyncio.get_running_loop().time() + 5.0
    while await manager.aexists(client.id):
        assert asyncio.get_running_loop().time() < deadline, "the parked socket was never forgotten"
        await asyncio.sleep(0.05)
    for _ in range(40):
        if ("left", f"socket:{client.id}") in EVENTS:
            break
        await asyncio.sleep(0.05)
    assert EVENTS.count(("left", f"socket:{client.id}")) == 1
    late = await opened(resume_path("/ws/short/i/", client.token, client.offset))
    assert late.id != client.id and late.hello["params"]["recovered"] is False
    assert late.hello["params"]["recovery_failed"] in {"unknown", "expired"}
    await late.disconnect()
    await peer.disconnect()


async def test_a_normal_close_is_not_parked(backend: str) -> None:
    client = await opened("/ws/rec/j/")
    await client.disconnect(code=1000)
    await client.wait(1.0)
    assert not await manager.aexists(client.id)
    assert ("left", f"socket:{client.id}") in EVENTS


async def test_a_server_side_disconnect_is_not_parked_but_a_restart_close_is(backend: str) -> None:
    kicked = await opened("/ws/rec/k/")
    restarted = await opened("/ws/rec/k/")
    await manager.adisconnect(kicked.id, 4000, "bye")
    await manager.adisconnect(restarted.id, 1012, "restart")
    await kicked.wait(1.0)
    await restarted.wait(1.0)
    assert not await manager.aexists(kicked.id)
    routes = await get_registry().nodes_of(RecoverHandler.handler_name, [restarted.id])
    assert routes == {PARKED: [restarted.id]}
    await manager.adisconnect(restarted.id)  # a parked socket can be forgotten on purpose
    assert not await manager.aexists(restarted.id)


async def test_resuming_while_the_old_connection_is_still_open_takes_it_over(backend: str) -> None:
    """A half-open old connection (the server has not noticed the drop) gets 4409."""
    old = await opened("/ws/rec/l/")
    await old.call("say", "x")
    (seen,) = await notes(old, 1)
    new = await opened(resume_path("/ws/rec/l/", old.token, seen["offset"]))
    assert new.id == old.id and new.hello["params"]["recovered"] is True
    closed = await old.receive_output(2.0)
    assert closed == {"type": "websocket.close", "code": 4409, "reason": "resumed elsewhere"}
    await old.disconnect(4409)  # its client answers the close: the old connection's end has run
    assert await manager.aexists(new.id)  # and it left the entry alone
    assert get_node().sockets[new.id] is not None
    await new.call("say", "still here")
    notes_ = await notes(new, 3)
    assert [n["method"] for n in notes_] == ["said", "welcome_back", "said"]
    assert [notes_[0]["params"], notes_[2]["params"]] == [["x"], ["still here"]]
    await new.disconnect()


async def test_a_malformed_offset_or_token_is_refused_cleanly(backend: str) -> None:
    client = await opened("/ws/rec/m/")
    await client.drop()
    for token, offset in [(client.token, "not-an-offset"), ("no-dot", "0-0"), ("x" * 300, "0-0")]:
        other = await opened(resume_path("/ws/rec/m/", token, offset))
        assert other.hello["params"]["recovered"] is False
        await other.disconnect()


def test_the_entry_keeps_its_recovery_fields_through_json() -> None:
    entry = ConnectionInfo("s", "h", "n", recovery=60.0, resume_key="ab")
    assert ConnectionInfo.from_json(json.loads(json.dumps(entry.to_json()))) == entry
    plain = ConnectionInfo("s", "h", "n")
    assert "recovery" not in plain.to_json()


async def test_a_resume_passes_the_origin_check_first(backend: str) -> None:
    client = await opened("/ws/strict/n/", origin="https://ok.example")
    await client.drop()
    intruder = Client(
        application,
        resume_path("/ws/strict/n/", client.token, client.offset),
        headers=[(b"origin", b"https://evil.example")],
    )
    accepted, _ = await intruder.connect()
    assert not accepted  # HTTP 403, before the token is looked at
    routes = await get_registry().nodes_of(RecoverHandler.handler_name, [client.id])
    assert routes == {PARKED: [client.id]}
    owner = await opened(
        resume_path("/ws/strict/n/", client.token, client.offset), origin="https://ok.example"
    )
    assert owner.id == client.id and owner.hello["params"]["recovered"] is True
    await owner.disconnect()


async def test_a_forged_token_naming_a_live_socket_never_sees_its_frames(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token is checked before the connection takes the id: frames sent to the
    victim while an impostor's resume is being checked go to the victim only."""
    victim = await opened("/ws/rec/o/")
    registry = get_registry()
    real_get = registry.get

    async def get_while_someone_sends(handler: str, socket_id: str) -> Any:
        await manager.anotify(victim.id, "secret", "for the victim")
        return await real_get(handler, socket_id)

    monkeypatch.setattr(registry, "get", get_while_someone_sends)
    impostor = await opened(resume_path("/ws/rec/o/", f"{victim.id}.forged-secret", victim.offset))
    monkeypatch.setattr(registry, "get", real_get)
    assert impostor.id != victim.id and impostor.hello["params"]["recovery_failed"] == "unknown"
    await nothing_more(impostor)
    (secret,) = await notes(victim, 1)
    assert secret["method"] == "secret"
    assert get_node().sockets[victim.id] is not None
    await victim.call("tell_me", "still mine")
    (mine,) = await notes(victim, 1)
    assert mine["params"] == ["still mine"]
    await impostor.disconnect()
    await victim.disconnect()


async def test_a_resumed_msgpack_socket_gets_its_replay_as_msgpack(backend: str) -> None:
    """The replayed notifications were journaled as JSON text; a MessagePack socket gets them
    packed, as every other frame (the communicator refuses a text frame on MessagePack)."""
    client = Client(application, "/ws/rec/m/?user=8", encoding="msgpack")
    assert (await client.connect())[0] and client.encoding == "msgpack"
    peer = await opened("/ws/rec/m/")
    await client.call("say", "before")
    (before,) = await notes(client, 1)
    await notes(peer, 1)
    await client.drop()
    await peer.call("say", "to the room")
    await manager.anotify(client.id, "whisper", "by id")

    back = Client(
        application, resume_path("/ws/rec/m/?user=8", client.token, before["offset"]), encoding="msgpack"
    )
    assert (await back.connect())[0] and back.encoding == "msgpack"
    assert back.hello["params"]["replayed"] == 2
    frames = [await back.receive_output(2) for _ in range(4)]
    assert all(f.get("text") is None and isinstance(f.get("bytes"), bytes) for f in frames), frames
    methods = [wire.loads(f["bytes"])["method"] for f in frames]
    assert methods == ["said", "said", "whisper", "welcome_back"]
    await back.disconnect()
    await peer.disconnect()
