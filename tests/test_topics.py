"""Topics in process (wsmanager.topics): patterns, authorization, refusals, the order of
replayed and live publications (the races of a subscribe), publishing after commit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import transaction
from django.test import override_settings

from demo_chat.live import LiveHandler
from demo_chat.models import Task
from demo_chat.routing import websocket_urlpatterns
from tests import topic_handlers
from tests.topic_handlers import RecoverableTopicHandler, TopicHandler, application
from wsmanager import ConfigurationError, RpcHandler, SocketNotFound, stats, topic, websocket_app
from wsmanager.testing import RpcCommunicator
from wsmanager.topics import Position, observe_model
from wsmanager.topics._patterns import match
from wsmanager.topics._store import get_history

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/ws/topics/"
manager = TopicHandler.manager


@pytest.fixture(autouse=True)
def _no_hold() -> Iterator[None]:
    topic_handlers.hold.clear()
    yield
    topic_handlers.hold.clear()


def publications(notes: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(n["params"]["topic"], n["params"]["offset"]) for n in notes if n["method"] == "rpc.publication"]


async def subscribe(client: RpcCommunicator, **params: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the notifications before the answer, the answer)."""
    answer = await client.request("rpc.subscribe", **params)
    before = list(client._notes)
    client._notes.clear()
    return before, answer


async def next_publication(client: RpcCommunicator) -> tuple[str, int, str]:
    note = await client.next_notification()
    assert note["method"] == "rpc.publication", note
    return note["params"]["topic"], note["params"]["offset"], note["params"]["event"]


# -- patterns -----------------------------------------------------------------------------
def test_patterns_match_whole_names_in_one_spelling() -> None:
    patterns = [topic("tasks"), topic("user.<int:id>"), topic("order.<slug:ref>")]
    assert match(patterns, "tasks") == (patterns[0], {})
    assert match(patterns, "user.42") == (patterns[1], {"id": 42})
    assert match(patterns, "order.a-b") == (patterns[2], {"ref": "a-b"})
    for name in ("task", "tasks.1", "user.x", "user.05", "user.4.2", "order.a.b", ""):
        assert match(patterns, name) is None, name


@pytest.mark.parametrize(
    "make",
    [
        lambda: topic("user.<nope:id>"),
        lambda: topic(""),
        lambda: topic("t", history_size=-1),
        lambda: topic("t", history_size=True),
        lambda: topic("t", history_ttl=0),
    ],
)
def test_bad_patterns_fail_when_declared(make: Any) -> None:
    with pytest.raises(ConfigurationError):
        make()


def test_topics_hold_patterns_only() -> None:
    with pytest.raises(ConfigurationError, match="topics must hold"):

        class Wrong(RpcHandler):
            topics = ["tasks"]  # type: ignore[list-item]


# -- subscribe: results and refusals --------------------------------------------------------
async def test_subscribe_answers_the_position_and_publications_follow() -> None:
    async with RpcCommunicator(application, PATH) as client:
        before, answer = await subscribe(client, topic="news")
        assert before == []
        epoch = answer["result"]["epoch"]
        assert answer["result"] == {"topic": "news", "offset": 0, "epoch": epoch, "recovered": False}
        assert await manager.apublish("news", "created", {"id": 1}) == 1
        note = await client.next_notification()
        assert note == {
            "jsonrpc": "2.0",
            "method": "rpc.publication",
            "params": {"topic": "news", "offset": 1, "epoch": epoch, "event": "created", "data": {"id": 1}},
        }
        assert await manager.agroup_members("topic:news") == [client.id]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"topic": "nope"}, -32010),
        ({"topic": "user.1"}, -32011),
        ({"topic": "even.3"}, -32011),
        ({"topic": 7}, -32602),
        ({"topic": ""}, -32602),
        ({"topic": "n" * 201}, -32602),
        ({"topic": "news", "extra": 1}, -32602),
        ({"topic": "news", "since": {"offset": -1, "epoch": "e"}}, -32602),
        ({"topic": "news", "since": {"offset": True, "epoch": "e"}}, -32602),
        ({"topic": "news", "since": {"offset": 1}}, -32602),
        ({"topic": "news", "since": {"offset": 1, "epoch": ""}}, -32602),
        ({"topic": "news", "since": [1, "e"]}, -32602),
    ],
)
async def test_refusals_have_their_codes_and_change_nothing(params: dict[str, Any], code: int) -> None:
    async with RpcCommunicator(application, PATH) as client:
        answer = await client.request("rpc.subscribe", **params)
        assert answer["error"]["code"] == code, answer
        assert "topic:" not in "".join(await manager.agroups())


async def test_positional_params_are_refused() -> None:
    async with RpcCommunicator(application, PATH) as client:
        assert (await client.request("rpc.subscribe", "news"))["error"]["code"] == -32602
        assert (await client.request("rpc.unsubscribe", "news"))["error"]["code"] == -32602


async def test_a_handler_without_topics_does_not_know_the_methods() -> None:
    async with RpcCommunicator(application, "/ws/plain/") as client:
        assert (await client.request("rpc.subscribe", topic="news"))["error"]["code"] == -32601


async def test_authorize_sees_the_user_and_the_converted_values() -> None:
    ann = await User.objects.acreate(username="ann")
    async with RpcCommunicator(application, PATH, user=ann) as client:
        assert (await client.request("rpc.subscribe", topic=f"user.{ann.pk}"))["result"]["offset"] == 0
        assert (await client.request("rpc.subscribe", topic=f"user.{ann.pk + 1}"))["error"]["code"] == -32011
        assert "result" in await client.request("rpc.subscribe", topic="even.4")  # a sync authorize
    async with RpcCommunicator(application, PATH) as anonymous:
        assert (await anonymous.request("rpc.subscribe", topic=f"user.{ann.pk}"))["error"]["code"] == -32011


async def test_too_many_subscriptions_is_refused_but_a_repeat_is_not() -> None:
    async with RpcCommunicator(application, PATH) as client:
        for name in ("news", "even.2", "room.a"):
            assert "result" in await client.request("rpc.subscribe", topic=name)
        refused = await client.request("rpc.subscribe", topic="room.b")
        assert refused["error"] == {"code": -32012, "message": "Too many subscriptions", "data": {"max": 3}}
        assert "result" in await client.request("rpc.subscribe", topic="news")
        await client.call("rpc.unsubscribe", topic="news")
        assert "result" in await client.request("rpc.subscribe", topic="room.b")


async def test_unsubscribe_stops_publications_and_is_idempotent() -> None:
    async with RpcCommunicator(application, PATH) as client:
        await client.call("rpc.subscribe", topic="news")
        await client.call("rpc.subscribe", topic="even.2")
        assert await client.call("rpc.unsubscribe", topic="news") == {"topic": "news"}
        assert await client.call("rpc.unsubscribe", topic="news") == {"topic": "news"}
        assert await client.call("rpc.unsubscribe", topic="never") == {"topic": "never"}
        await manager.apublish("news", "e", 1)
        await manager.apublish("even.2", "e", 2)
        assert await next_publication(client) == ("even.2", 1, "e")  # news's never came


# -- since: replay, recovered, state ----------------------------------------------------------
async def test_since_replays_the_missed_ones_in_order_before_the_answer() -> None:
    first = await manager.apublish("news", "a", 1)
    for i in range(4):
        await manager.apublish("news", "b", i)
    epoch = (await manager.ahistory("news", limit=0)).position.epoch
    async with RpcCommunicator(application, PATH) as client:
        before, answer = await subscribe(client, topic="news", since={"offset": first + 1, "epoch": epoch})
        assert publications(before) == [("news", 3), ("news", 4), ("news", 5)]
        assert answer["result"] == {"topic": "news", "offset": 5, "epoch": epoch, "recovered": True}
        await manager.apublish("news", "c", 5)
        assert await next_publication(client) == ("news", 6, "c")


async def test_state_comes_without_since_and_after_a_lost_gap_only() -> None:
    for i in range(5):
        await manager.apublish("room.x", "said", i)
    position = (await manager.ahistory("room.x", limit=0)).position
    async with RpcCommunicator(application, PATH) as client:
        result = await client.call("rpc.subscribe", topic="room.x")
        assert result["state"] == {"room": "x", "socket": client.id} and result["offset"] == 5
        lost = await client.call(
            "rpc.subscribe", topic="room.x", since={"offset": 1, "epoch": position.epoch}
        )
        assert lost["recovered"] is False and lost["offset"] == 5 and "state" in lost  # size 3: 2..5 gone
        kept = await client.call(
            "rpc.subscribe", topic="room.x", since={"offset": 3, "epoch": position.epoch}
        )
        assert kept["recovered"] is True and "state" not in kept
        assert [await next_publication(client) for _ in range(2)] == [
            ("room.x", 4, "said"),
            ("room.x", 5, "said"),
        ]
        other = await client.call("rpc.subscribe", topic="room.x", since={"offset": 3, "epoch": "another"})
        assert other["recovered"] is False and other["epoch"] == position.epoch


async def test_subscribes_in_a_batch_replay_before_the_batch_answer() -> None:
    await manager.apublish("news", "a", 1)
    await manager.apublish("news", "b", 2)
    epoch = (await manager.ahistory("news", limit=0)).position.epoch
    batch = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "rpc.subscribe",
            "params": {"topic": "news", "since": {"offset": 0, "epoch": epoch}},
        },
        {"jsonrpc": "2.0", "id": 2, "method": "rpc.subscribe", "params": {"topic": "even.2"}},
    ]
    async with RpcCommunicator(application, PATH) as client:
        await client.send_to(text_data=json.dumps(batch))
        frames = [await client.receive_json_from() for _ in range(3)]
        assert [f["params"]["offset"] for f in frames[:2]] == [1, 2]
        assert [(a["id"], a["result"]["topic"]) for a in frames[2]] == [(1, "news"), (2, "even.2")]
        await manager.apublish("even.2", "c", 3)
        assert await next_publication(client) == ("even.2", 1, "c")


# -- the races of a subscribe -------------------------------------------------------------------
async def test_a_publication_between_the_join_and_the_read_arrives_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It is both live (the socket joined) and in the replay (appended before the read):
    the replay has it, the live copy is dropped."""
    await manager.apublish("news", "old", 0)
    epoch = (await manager.ahistory("news", limit=0)).position.epoch
    store = get_history()
    read = store.read

    async def publish_then_read(*args: Any, **kwargs: Any) -> Any:
        await manager.apublish("news", "raced", 1)
        return await read(*args, **kwargs)

    monkeypatch.setattr(store, "read", publish_then_read)
    async with RpcCommunicator(application, PATH) as client:
        before, answer = await subscribe(client, topic="news", since={"offset": 0, "epoch": epoch})
        assert publications(before) == [("news", 1), ("news", 2)]
        assert answer["result"]["offset"] == 2
        monkeypatch.setattr(store, "read", read)
        await manager.apublish("news", "next", 2)
        assert await next_publication(client) == ("news", 3, "next")  # no second copy of 2 before it


async def test_without_since_what_the_position_covers_is_not_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = get_history()
    read = store.read

    async def publish_then_read(*args: Any, **kwargs: Any) -> Any:
        await manager.apublish("news", "raced", 1)
        return await read(*args, **kwargs)

    monkeypatch.setattr(store, "read", publish_then_read)
    async with RpcCommunicator(application, PATH) as client:
        before, answer = await subscribe(client, topic="news")
        assert before == [] and answer["result"]["offset"] == 1
        monkeypatch.setattr(store, "read", read)
        await manager.apublish("news", "next", 2)
        assert await next_publication(client) == ("news", 2, "next")


async def test_a_publication_while_the_state_is_read_comes_after_the_answer() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    topic_handlers.hold.update(started=started, release=release)
    async with RpcCommunicator(application, PATH) as client:
        await client.send_to(
            text_data=json.dumps(
                {"jsonrpc": "2.0", "id": 9, "method": "rpc.subscribe", "params": {"topic": "slow.1"}}
            )
        )
        await asyncio.wait_for(started.wait(), 3)
        assert await manager.apublish("slow.1", "during", None) == 1  # after the read: held
        release.set()
        answer = await client.receive_json_from()
        assert answer["id"] == 9 and answer["result"]["offset"] == 0 and answer["result"]["state"] == "state"
        assert await next_publication(client) == ("slow.1", 1, "during")


async def test_a_failed_subscribe_leaves_the_group_and_counts_what_it_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = get_history()

    async def failing(*args: Any, **kwargs: Any) -> Any:
        await manager.apublish("news", "held", 1)
        raise RuntimeError("store down")

    monkeypatch.setattr(store, "read", failing)
    async with RpcCommunicator(application, PATH) as client:
        answer = await client.request("rpc.subscribe", topic="news")
        assert answer["error"]["code"] == -32603
        assert await manager.agroup_members("topic:news") == []
        assert stats()["dropped_subscribe_failed"] == 1


async def test_a_resumed_socket_is_still_subscribed_and_gets_what_it_missed() -> None:
    """Connection recovery keeps the group, and journals publications for a parked socket."""
    recoverable = RecoverableTopicHandler.manager
    client = RpcCommunicator(application, "/ws/recoverable/")
    assert (await client.connect())[0]
    token = client.hello["params"]["recovery"]["token"]
    await client.call("rpc.subscribe", topic="news")
    await recoverable.apublish("news", "e", 1)
    first = await client.next_notification()
    await client.send_input({"type": "websocket.disconnect", "code": 1006})
    await client.wait(1.0)
    await recoverable.apublish("news", "e", 2)
    await recoverable.apublish("news", "e", 3)
    query = urlencode({"wsm_resume": token, "wsm_offset": first["offset"]})
    back = RpcCommunicator(application, f"/ws/recoverable/?{query}")
    assert (await back.connect())[0]
    assert back.id == client.id and back.hello["params"]["recovered"] is True
    replayed = [(await back.next_notification())["params"]["offset"] for _ in range(3)]
    assert replayed == [1, 2, 3]  # the journal's margin repeats the offset given: the client drops it
    await recoverable.apublish("news", "e", 4)
    assert (await back.next_notification())["params"]["offset"] == 4
    await back.disconnect()


async def test_a_socket_the_registry_lost_is_told_to_try_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared registry that took the socket's process for dead forgot it (it is re-added by
    the next heartbeat): the subscribe is answered -32005, not an internal error."""

    async def lost(self: Any, group: str) -> None:
        raise SocketNotFound(self.id, self.handler_name)

    monkeypatch.setattr(TopicHandler, "join", lost)
    async with RpcCommunicator(application, PATH) as client:
        answer = await client.request("rpc.subscribe", topic="news")
        assert answer["error"]["code"] == -32005


async def test_too_many_publications_held_during_a_subscribe_close_the_socket() -> None:
    """A subscribe held up (here by its ``initial``) while more publications arrive than the
    outgoing queue may hold: the socket is closed 1013, as a full queue would, and counted."""
    started, release = asyncio.Event(), asyncio.Event()
    topic_handlers.hold.update(started=started, release=release)
    with override_settings(WSMANAGER={"MAX_OUTGOING_QUEUE": 3}):
        async with RpcCommunicator(application, PATH) as client:
            message = {"jsonrpc": "2.0", "id": 9, "method": "rpc.subscribe", "params": {"topic": "slow.2"}}
            await client.send_to(text_data=json.dumps(message))
            await asyncio.wait_for(started.wait(), 3)
            for i in range(4):
                await manager.apublish("slow.2", "e", i)
            closed = await client.receive_output()
            assert closed == {"type": "websocket.close", "code": 1013, "reason": "too slow"}
            release.set()
    assert stats()["dropped_overflow"] == 1


# -- publishing ------------------------------------------------------------------------------------
async def test_publish_checks_before_any_work() -> None:
    with pytest.raises(ValueError, match="no topic pattern"):
        await manager.apublish("nope", "e", 1)
    with pytest.raises(ValueError, match="at most 200"):
        await manager.apublish("n" * 201, "e", 1)
    with pytest.raises(ValueError, match="event"):
        await manager.apublish("news", "", 1)
    with pytest.raises(TypeError, match="not JSON"):
        await manager.apublish("news", "e", {1, 2})
    assert (await manager.ahistory("news", limit=10)).publications == []


async def test_history_reads_latest_and_since() -> None:
    for i in range(3):
        await manager.apublish("news", "e", {"i": i})
    latest = await manager.ahistory("news", limit=2)
    assert [p.to_json()["data"] for p in latest.publications] == [{"i": 1}, {"i": 2}] and latest.more
    since = await manager.ahistory("news", since={"offset": 1, "epoch": latest.position.epoch})
    assert [p.offset for p in since.publications] == [2, 3] and since.recovered
    assert (await manager.ahistory("news", since=Position(0, "x"))).recovered is False


# -- after commit, and model observers (the demo's Task, observed by demo_chat/live.py) -----------
live_app = websocket_app(websocket_urlpatterns)


async def test_a_rollback_publishes_nothing_and_a_commit_publishes_in_order() -> None:
    async with RpcCommunicator(live_app, "/ws/live/") as client:
        await client.call("rpc.subscribe", topic="tasks")

        def rolled_back() -> None:
            with pytest.raises(RuntimeError), transaction.atomic():
                Task.objects.create(title="never")
                LiveHandler.manager.publish_on_commit("tasks", "extra", {"n": 0})
                raise RuntimeError("roll back")

        def committed() -> None:
            with transaction.atomic():
                task = Task.objects.create(title="kept")
                task.done = True
                task.save()
                LiveHandler.manager.publish_on_commit("tasks", "extra", {"n": 1})
                task.delete()

        await sync_to_async(rolled_back)()
        assert (await LiveHandler.manager.ahistory("tasks", limit=0)).position.offset == 0
        await sync_to_async(committed)()
        events = [await next_publication(client) for _ in range(4)]
        assert events == [
            ("tasks", 1, "created"),
            ("tasks", 2, "updated"),
            ("tasks", 3, "extra"),
            ("tasks", 4, "deleted"),
        ]


async def test_an_observer_publishes_what_it_is_told_and_can_be_disconnected() -> None:
    disconnect = observe_model(
        Task, LiveHandler, topic=lambda t: [f"user.{t.pk}"], serialize=lambda t: t.title, events=["deleted"]
    )
    try:
        task = await Task.objects.acreate(title="x")
        pk = task.pk
        await task.adelete()
        read = await LiveHandler.manager.ahistory(f"user.{pk}", limit=10)
        assert [(p.event, p.data_json) for p in read.publications] == [("deleted", '"x"')]
    finally:
        disconnect()
    with pytest.raises(ValueError, match="unknown events"):
        observe_model(Task, LiveHandler, topic="tasks", serialize=str, events=["saved"])
    with pytest.raises(TypeError, match="handler class or its manager"):
        observe_model(Task, object(), topic="tasks", serialize=str)
