"""Client.subscribe() in the browser against a scripted server: the topic protocol's corners.

The test plays the server (fake_server.FakeServer) of docs/protocol.md's topics: it reads
`rpc.subscribe` and `rpc.unsubscribe`, answers or refuses them, and sends `rpc.publication`
in any order, twice, from another epoch. The same client against the real server is in
tests/browser/test_tasks_page.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from .conftest import CLIENT_JS
from .fake_server import FakeServer, Peer
from .test_client_protocol import events, make_client, wait_events, within

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# A page of the fake server's origin (sessionStorage needs an origin; about:blank has none).
PAGE = f"<!doctype html><title>topics</title><script>{CLIENT_JS.read_text()}</script>"

# Subscribes window[client] to `topic`: publications go to window.got[topic], each subscription
# event and callback to window.log, and how the promise settled to window.subs[topic].
SUBSCRIBE = """
([client, topic, options]) => {
    window.got = window.got || {};
    window.subs = window.subs || {};
    window.log = window.log || [];
    window.got[topic] = [];
    const opts = Object.assign({}, options, {
        onUnrecovered: (info) => window.log.push(
            {type: "onUnrecovered", topic: info.topic, since: info.since, position: info.position,
             reason: info.reason, same: info.subscription === window.sub}),
        onError: (error) => window.log.push({type: "onError", code: error.code}),
    });
    window.subs[topic] = window[client].subscribe(topic, (p, sub) => {
        window.got[topic].push([p.offset, p.epoch, p.event, p.data, sub.position.offset]);
    }, opts).then(
        (sub) => {
            window.sub = sub;
            for (const type of ["subscribed", "unrecovered", "unsubscribed"]) {
                sub.addEventListener(type, (e) => window.log.push({
                    type, recovered: e.recovered, resubscribe: e.resubscribe, offset: e.offset,
                    reason: e.reason, error: e.error ? e.error.code : e.error, state: e.state}));
            }
            return {ok: sub.topic, position: sub.position, state: sub.state, active: sub.active};
        },
        (err) => {
            const error = {name: err.name};
            if (err.code !== undefined) error.code = err.code;
            if (err.reason !== undefined) error.reason = err.reason;
            return {error};
        });
}
"""


@pytest.fixture
def app_page(new_page: Callable[[], Page], fake_server: FakeServer) -> Page:
    """A page served by the fake server itself, with the client library loaded."""
    fake_server.pages["/app/"] = PAGE
    page = new_page()
    page.goto(f"http://127.0.0.1:{fake_server.port}/app/")
    return page


def subscribe(page: Page, topic: str, client: str = "c", **options: Any) -> None:
    page.evaluate(SUBSCRIBE, [client, topic, options])


def outcome(page: Page, topic: str) -> dict[str, Any]:
    return dict(within(page, "t => window.subs[t]", topic))


def got(page: Page, topic: str, count: int) -> list[list[Any]]:
    page.wait_for_function("([t, n]) => window.got[t].length >= n", arg=[topic, count])
    return list(page.evaluate("t => window.got[t]", topic))


def answer(peer: Peer, request: dict[str, Any], **result: Any) -> None:
    peer.send({"jsonrpc": "2.0", "result": result, "id": request["id"]})


def refuse(peer: Peer, request: dict[str, Any], code: int, message: str) -> None:
    peer.send({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": request["id"]})


def publish(
    peer: Peer, topic: str, offset: int, epoch: str = "e1", event: str = "created", data: Any = None
) -> None:
    params = {"topic": topic, "offset": offset, "epoch": epoch, "event": event, "data": data}
    peer.send({"jsonrpc": "2.0", "method": "rpc.publication", "params": params})


def recv_method(peer: Peer, method: str) -> dict[str, Any]:
    return dict(peer.recv_until(lambda m: m.get("method") == method))


def stored(page: Page) -> dict[str, Any]:
    return dict(page.evaluate("Object.fromEntries(Object.entries(sessionStorage))"))


def test_subscribe_delivers_in_order_once_and_keeps_the_position(
    app_page: Page, fake_server: FakeServer
) -> None:
    """rpc.subscribe goes out after rpc.connected; publications reach the callback in order, a
    repeated offset is dropped and counted, and the position is kept in sessionStorage."""
    make_client(app_page, fake_server.url("/ws/live/"))
    subscribe(app_page, "tasks")
    peer = fake_server.next_peer()
    request = recv_method(peer, "rpc.subscribe")
    assert request["params"] == {"topic": "tasks"}
    answer(peer, request, topic="tasks", offset=4, epoch="e1", recovered=False, state={"n": 4})
    assert outcome(app_page, "tasks") == {
        "ok": "tasks",
        "position": {"offset": 4, "epoch": "e1"},
        "state": {"n": 4},
        "active": True,
    }
    for offset in (5, 6, 6, 4, 7):
        publish(peer, "tasks", offset, data={"id": offset})
    assert got(app_page, "tasks", 3) == [
        [5, "e1", "created", {"id": 5}, 5],
        [6, "e1", "created", {"id": 6}, 6],
        [7, "e1", "created", {"id": 7}, 7],
    ]
    assert app_page.evaluate("window.sub.duplicates") == 2
    key = f"wsmanager.position 127.0.0.1:{fake_server.port}/ws/live/ tasks"
    assert stored(app_page) == {key: '{"offset":7,"epoch":"e1"}'}
    # No unrecovered: a first subscription without `since` has nothing to recover.
    assert [e for e in app_page.evaluate("window.log") if "nrecovered" in e["type"]] == []


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (-32010, "Unknown topic"),
        (-32011, "Not authorized"),
        (-32012, "Too many subscriptions"),
        (-32602, "Invalid params"),
    ],
)
def test_refusals_reject_with_their_code_and_leave_nothing(
    app_page: Page, fake_server: FakeServer, code: int, message: str
) -> None:
    make_client(app_page, fake_server.url())
    peer = fake_server.next_peer()
    subscribe(app_page, "user.7")
    refuse(peer, recv_method(peer, "rpc.subscribe"), code, message)
    assert outcome(app_page, "user.7") == {"error": {"name": "RpcError", "code": code}}
    assert app_page.evaluate("window.c.subscriptions.size") == 0
    publish(peer, "user.7", 1)  # not subscribed: dropped, counted
    app_page.wait_for_function("window.c.ignoredPublications === 1")
    assert app_page.evaluate("window.got['user.7']") == []
    assert stored(app_page) == {}


def test_reconnect_resubscribes_from_the_last_position(app_page: Page, fake_server: FakeServer) -> None:
    """After a drop the client subscribes again with `since`; the replay arrives before the answer,
    what was delivered already is dropped, and nothing is reported unrecovered."""
    make_client(app_page, fake_server.url())
    first = fake_server.next_peer()
    subscribe(app_page, "tasks")
    answer(first, recv_method(first, "rpc.subscribe"), topic="tasks", offset=10, epoch="e1", recovered=False)
    outcome(app_page, "tasks")
    publish(first, "tasks", 11)
    got(app_page, "tasks", 1)
    first.drop()

    second = fake_server.next_peer()
    request = recv_method(second, "rpc.subscribe")
    assert request["params"] == {"topic": "tasks", "since": {"offset": 11, "epoch": "e1"}}
    for offset in (11, 12, 13):  # 11 again: the server replays from its own idea of the position
        publish(second, "tasks", offset)
    answer(second, request, topic="tasks", offset=13, epoch="e1", recovered=True)
    publish(second, "tasks", 14)
    assert [p[0] for p in got(app_page, "tasks", 4)] == [11, 12, 13, 14]
    subscribed = wait_events(app_page, "subscribed", 1)
    assert [(e["recovered"], e["resubscribe"]) for e in subscribed] == [(True, True)]
    assert events(app_page, "unrecovered") == [] and events(app_page, "onUnrecovered") == []


def test_recovered_false_is_reported_so_the_app_refetches(app_page: Page, fake_server: FakeServer) -> None:
    """`since` older than the history: onUnrecovered and "unrecovered" (reason "history"), and the
    position moves to the answer's; later publications flow."""
    make_client(app_page, fake_server.url())
    peer = fake_server.next_peer()
    subscribe(app_page, "tasks", since={"offset": 3, "epoch": "old"})
    request = recv_method(peer, "rpc.subscribe")
    assert request["params"]["since"] == {"offset": 3, "epoch": "old"}
    answer(peer, request, topic="tasks", offset=40, epoch="new", recovered=False)
    assert outcome(app_page, "tasks")["position"] == {"offset": 40, "epoch": "new"}
    (info,) = wait_events(app_page, "onUnrecovered", 1)
    assert info == {
        "type": "onUnrecovered",
        "topic": "tasks",
        "since": {"offset": 3, "epoch": "old"},
        "position": {"offset": 40, "epoch": "new"},
        "reason": "history",
        "same": False,  # called before subscribe() resolved: the app has no window.sub yet
    }
    publish(peer, "tasks", 41, epoch="new")
    assert [p[0] for p in got(app_page, "tasks", 1)] == [41]


def test_a_new_epoch_while_subscribed_is_unrecovered(app_page: Page, fake_server: FakeServer) -> None:
    make_client(app_page, fake_server.url())
    peer = fake_server.next_peer()
    subscribe(app_page, "tasks")
    answer(peer, recv_method(peer, "rpc.subscribe"), topic="tasks", offset=5, epoch="e1", recovered=False)
    outcome(app_page, "tasks")
    publish(peer, "tasks", 1, epoch="e2")  # history lost on the server: offsets start again
    publish(peer, "tasks", 2, epoch="e2")
    assert [p[:2] for p in got(app_page, "tasks", 2)] == [[1, "e2"], [2, "e2"]]
    (event,) = wait_events(app_page, "unrecovered", 1)
    assert event["reason"] == "epoch"


def test_a_reloaded_page_subscribes_from_the_stored_position(app_page: Page, fake_server: FakeServer) -> None:
    """The position survives a reload in sessionStorage; `persist: false` and `since` opt out."""
    make_client(app_page, fake_server.url())
    peer = fake_server.next_peer()
    subscribe(app_page, "tasks")
    answer(peer, recv_method(peer, "rpc.subscribe"), topic="tasks", offset=1, epoch="e1", recovered=False)
    outcome(app_page, "tasks")
    publish(peer, "tasks", 2)
    got(app_page, "tasks", 1)

    app_page.reload()  # pagehide closes the client on purpose; the position stays
    make_client(app_page, fake_server.url())
    peer = fake_server.next_peer()
    subscribe(app_page, "tasks")
    assert recv_method(peer, "rpc.subscribe")["params"]["since"] == {"offset": 2, "epoch": "e1"}
    subscribe(app_page, "other", persist=False)
    assert recv_method(peer, "rpc.subscribe")["params"] == {"topic": "other"}
    assert len(stored(app_page)) == 1

    app_page.reload()
    make_client(app_page, fake_server.url())
    peer = fake_server.next_peer()
    subscribe(app_page, "tasks", since={"offset": 1, "epoch": "e1"})  # the app's own state wins
    assert recv_method(peer, "rpc.subscribe")["params"]["since"] == {"offset": 1, "epoch": "e1"}

    app_page.reload()
    make_client(app_page, fake_server.url(), positionStorage=False)
    peer = fake_server.next_peer()
    subscribe(app_page, "tasks")
    assert recv_method(peer, "rpc.subscribe")["params"] == {"topic": "tasks"}


def test_unsubscribe_stops_delivery_and_forgets_the_position(app_page: Page, fake_server: FakeServer) -> None:
    make_client(app_page, fake_server.url())
    peer = fake_server.next_peer()
    subscribe(app_page, "tasks")
    answer(peer, recv_method(peer, "rpc.subscribe"), topic="tasks", offset=1, epoch="e1", recovered=False)
    outcome(app_page, "tasks")
    assert len(stored(app_page)) == 1
    app_page.evaluate("() => { window.done = window.sub.unsubscribe(); }")  # not awaited here
    request = recv_method(peer, "rpc.unsubscribe")
    assert request["params"] == {"topic": "tasks"}
    publish(peer, "tasks", 2)  # already on its way
    peer.send({"jsonrpc": "2.0", "result": {"topic": "tasks"}, "id": request["id"]})
    within(app_page, "() => window.done")
    app_page.wait_for_function("window.c.ignoredPublications === 1")
    assert app_page.evaluate("[window.got.tasks, window.sub.closed, window.c.subscriptions.size]") == [
        [],
        True,
        0,
    ]
    assert stored(app_page) == {}
    assert [e["error"] for e in events(app_page, "unsubscribed")] == [None]
    # A second unsubscribe sends nothing; the topic may be subscribed again.
    app_page.evaluate("window.sub.unsubscribe()")
    subscribe(app_page, "tasks")
    assert recv_method(peer, "rpc.subscribe")["params"] == {"topic": "tasks"}


def test_subscribe_waits_for_a_connection_and_fails_when_closed(
    app_page: Page, fake_server: FakeServer
) -> None:
    """Before connect() it waits; close() before the answer rejects NotConnectedError; a closed
    client rejects at once; the same topic twice is refused; bad arguments throw."""
    make_client(app_page, fake_server.url(), connect=False)
    subscribe(app_page, "early")
    app_page.evaluate("window.c.connect()")
    peer = fake_server.next_peer()
    request = recv_method(peer, "rpc.subscribe")
    assert request["params"] == {"topic": "early"}
    subscribe(app_page, "early")
    assert outcome(app_page, "early")["error"]["name"] == "WsManagerError"
    app_page.evaluate("window.c.close()")
    # The first promise settled before the second replaced window.subs.early: check via a new topic.
    subscribe(app_page, "late")
    assert outcome(app_page, "late") == {"error": {"name": "NotConnectedError", "reason": "closed"}}
    errors = app_page.evaluate(
        """() => [["", () => {}], [5, () => {}], ["t", () => {}, {sinse: 1}],
                  ["t", () => {}, {since: {offset: "1"}}]]
            .map((args) => { try { window.c.subscribe(...args); } catch (e) { return e.message; } })"""
    )
    assert errors == [
        "topic must be a non-empty string",
        "topic must be a non-empty string",
        'unknown subscribe option "sinse"',
        "since must be {offset: a non-negative integer, epoch: a string}",
    ]


def test_close_before_the_answer_rejects_the_subscription(app_page: Page, fake_server: FakeServer) -> None:
    make_client(app_page, fake_server.url())
    peer = fake_server.next_peer()
    subscribe(app_page, "tasks")
    recv_method(peer, "rpc.subscribe")
    app_page.evaluate("window.c.close()")
    assert outcome(app_page, "tasks") == {"error": {"name": "NotConnectedError", "reason": "closed"}}


def test_a_refused_resubscription_ends_the_subscription(app_page: Page, fake_server: FakeServer) -> None:
    """Authorized before the drop, refused after (say, logged out): "unsubscribed" with the error
    and onError; the first subscription's promise had resolved, so nothing rejects."""
    make_client(app_page, fake_server.url())
    first = fake_server.next_peer()
    subscribe(app_page, "user.7")
    answer(first, recv_method(first, "rpc.subscribe"), topic="user.7", offset=0, epoch="e1", recovered=False)
    outcome(app_page, "user.7")
    first.drop()
    second = fake_server.next_peer()
    refuse(second, recv_method(second, "rpc.subscribe"), -32011, "Not authorized")
    (ended,) = wait_events(app_page, "unsubscribed", 1)
    assert ended["error"] == -32011
    assert events(app_page, "onError") == [{"type": "onError", "code": -32011}]
    assert app_page.evaluate("[window.sub.closed, window.c.subscriptions.size]") == [True, 0]


def test_a_drop_before_the_answer_subscribes_again_on_the_next_connection(
    app_page: Page, fake_server: FakeServer
) -> None:
    make_client(app_page, fake_server.url())
    first = fake_server.next_peer()
    subscribe(app_page, "tasks", since={"offset": 2, "epoch": "e1"})
    recv_method(first, "rpc.subscribe")
    first.drop()
    second = fake_server.next_peer()
    request = recv_method(second, "rpc.subscribe")
    assert request["params"] == {"topic": "tasks", "since": {"offset": 2, "epoch": "e1"}}
    publish(second, "tasks", 3)
    answer(second, request, topic="tasks", offset=3, epoch="e1", recovered=True)
    assert outcome(app_page, "tasks")["position"] == {"offset": 3, "epoch": "e1"}
    assert [p[0] for p in got(app_page, "tasks", 1)] == [3]


def test_a_gap_is_held_and_repaired_by_a_subscribe_from_the_position(
    app_page: Page, fake_server: FakeServer
) -> None:
    """Offsets grow by one: one that skips ahead is held, and the client subscribes again from
    its position at once; the missing one, live or replayed, goes first; order is kept."""
    make_client(app_page, fake_server.url())
    peer = fake_server.next_peer()
    subscribe(app_page, "tasks")
    answer(peer, recv_method(peer, "rpc.subscribe"), topic="tasks", offset=10, epoch="e1", recovered=False)
    outcome(app_page, "tasks")
    publish(peer, "tasks", 11)
    publish(peer, "tasks", 13)  # 12 is late (another process published it)
    repair = recv_method(peer, "rpc.subscribe")
    assert repair["params"] == {"topic": "tasks", "since": {"offset": 11, "epoch": "e1"}}
    assert [p[0] for p in got(app_page, "tasks", 1)] == [11]
    publish(peer, "tasks", 12)  # the late one arrives live
    assert [p[0] for p in got(app_page, "tasks", 3)] == [11, 12, 13]
    publish(peer, "tasks", 12)  # the replay before the answer: already delivered
    publish(peer, "tasks", 13)
    answer(peer, repair, topic="tasks", offset=13, epoch="e1", recovered=True)

    publish(peer, "tasks", 15)  # 14 never comes live: the replay brings it
    repair = recv_method(peer, "rpc.subscribe")
    assert repair["params"]["since"] == {"offset": 13, "epoch": "e1"}
    publish(peer, "tasks", 14)
    publish(peer, "tasks", 15)
    answer(peer, repair, topic="tasks", offset=15, epoch="e1", recovered=True)
    publish(peer, "tasks", 16)
    assert [p[0] for p in got(app_page, "tasks", 6)] == [11, 12, 13, 14, 15, 16]
    assert app_page.evaluate("[window.sub.duplicates, window.sub.position]") == [
        3,
        {"offset": 16, "epoch": "e1"},
    ]
    assert events(app_page, "unrecovered") == []
