"""A close on purpose in the browser: ``rpc.close`` before the close frame, and the page going away.

Against a scripted server: what the client sends when the application
closes it, when the page is unloaded or put in the back/forward cache, and
that a hidden page keeps its socket. Against each real server (the demo,
recovery on, served by tests/e2e/close_app.py): a member who closes, or
whose page is closed, leaves the room at once, on every server, hypercorn
(which reports every client's close as 1006, pgjones/hypercorn#127) included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.e2e.close_app import WINDOW
from tests.servers import ServerProcess, selected_kinds, server_process

from .conftest import CLIENT_JS, WAIT_MS
from .fake_server import FakeServer, Peer
from .test_client_protocol import events, make_client, wait_state

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

BYE = {"jsonrpc": "2.0", "method": "rpc.close"}


def closing_frames(peer: Peer) -> tuple[list[Any], int | None, str]:
    """What the browser sent until it closed (heartbeats aside), and its close code and reason."""
    frames: list[Any] = []
    try:
        while True:
            message = peer.recv(5.0)
            if message.get("method") != "rpc.ping":
                frames.append(message)
    except Exception:  # the connection closed: recv raised
        pass
    peer.wait_closed()
    return frames, peer.connection.close_code, peer.connection.close_reason or ""


def test_close_says_rpc_close_before_its_close_frame(blank_page: Page, fake_server: FakeServer) -> None:
    make_client(blank_page, fake_server.url())
    peer = fake_server.next_peer()
    blank_page.wait_for_function("window.c.id !== null")
    blank_page.evaluate("window.c.close()")
    assert closing_frames(peer) == ([BYE], 1000, "")


def test_close_with_a_code_says_it_in_rpc_close(blank_page: Page, fake_server: FakeServer) -> None:
    make_client(blank_page, fake_server.url())
    peer = fake_server.next_peer()
    blank_page.wait_for_function("window.c.id !== null")
    blank_page.evaluate("window.c.close(4001, 'done')")
    assert closing_frames(peer) == ([{**BYE, "params": {"code": 4001}}], 4001, "done")


def test_a_heartbeat_drop_is_not_a_close_on_purpose(blank_page: Page, fake_server: FakeServer) -> None:
    """A socket the client gives up on (no pong) may come back: no rpc.close for it."""
    make_client(blank_page, fake_server.url(), heartbeatInterval=100, heartbeatTimeout=300)
    peer = fake_server.next_peer()
    frames, _, reason = closing_frames(peer)  # the pings go unanswered
    assert frames == [] and reason == "heartbeat timeout"
    fake_server.next_peer()  # and it reconnects


@pytest.mark.parametrize("recovery", [True, False])
def test_a_page_that_is_unloaded_closes_on_purpose(
    new_page: Callable[[], Page], fake_server: FakeServer, recovery: bool
) -> None:
    """Left alone, a browser closes the socket with 1001 (or drops it), which a server offering
    recovery takes for a drop; the client says rpc.close and closes with 1000 first."""
    if recovery:
        fake_server.greeting = lambda peer: {"recovery": {"token": "tok", "offset": "1-0", "window": 60.0}}
    page = new_page()
    page.set_content("<!doctype html><title>client</title>")
    page.add_script_tag(path=str(CLIENT_JS))
    make_client(page, fake_server.url())
    peer = fake_server.next_peer()
    page.wait_for_function("window.c.id !== null")
    page.close()
    assert closing_frames(peer) == ([BYE], 1000, "page closed")


def test_a_page_put_in_the_back_forward_cache_closes_and_comes_back_as_a_fresh_session(
    blank_page: Page, fake_server: FakeServer
) -> None:
    """pagehide with ``persisted``: closed on purpose (the member leaves), and on pageshow a new
    connection that does not ask to resume (what the page missed meanwhile is not replayed)."""
    fake_server.greeting = lambda peer: {"recovery": {"token": "tok", "offset": "1-0", "window": 60.0}}
    make_client(blank_page, fake_server.url())
    peer = fake_server.next_peer()
    blank_page.wait_for_function("window.c.id !== null")
    blank_page.evaluate("window.dispatchEvent(new PageTransitionEvent('pagehide', {persisted: true}))")
    assert closing_frames(peer) == ([BYE], 1000, "page closed")
    wait_state(blank_page, "closed")
    blank_page.evaluate("window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))")
    back = fake_server.next_peer()
    assert "wsm_resume" not in back.query
    blank_page.wait_for_function("window.c.id === 'fake-2'")
    assert events(blank_page, "connected")[-1]["reconnect"] is False


def test_a_hidden_page_keeps_its_socket(blank_page: Page, fake_server: FakeServer) -> None:
    """Another tab, a minimised window: the socket stays (notifications keep coming, the
    member stays online); only the page going away closes it."""
    make_client(blank_page, fake_server.url())
    peer = fake_server.next_peer()
    blank_page.wait_for_function("window.c.id !== null")
    blank_page.evaluate(
        """() => {
            Object.defineProperty(document, "visibilityState", {value: "hidden", configurable: true});
            Object.defineProperty(document, "hidden", {value: true, configurable: true});
            document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )
    peer.send({"jsonrpc": "2.0", "method": "rpc.ping", "id": "alive"})
    assert peer.recv() == {"jsonrpc": "2.0", "result": "pong", "id": "alive"}
    assert blank_page.evaluate("window.c.state") == "open"
    assert events(blank_page, "close") == []


# --- against each real server ------------------------------------------------------------


@pytest.fixture(scope="module", params=selected_kinds())
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The demo with recovery on (60 s), on each server in turn."""
    env = {"DEMO_DB": ":memory:", "WSMANAGER_RECOVERY_WINDOW": str(WINDOW), "WSMANAGER_DRAIN_PERIOD": "0"}
    proc = server_process(request.param, app="tests.e2e.close_app:application", env=env)
    proc.start()
    yield proc
    proc.stop()


WATCH = """
([name, path]) => {
    window.came = window.came || [];
    window.gone = window.gone || [];
    const client = new wsmanager.Client(path, {heartbeatInterval: 0});
    window[name] = client;
    client.on("joined", (member) => { window.came.push(member.id); });
    client.on("left", (member) => { window.gone.push(member.id); });
    client.on("presence", (burst) => {
        window.came.push(...burst.joined.map((member) => member.id));
        window.gone.push(...burst.left);
    });
    return client.connect();
}
"""


def room_page(new_page: Callable[[], Page], server: ServerProcess) -> Page:
    """A page of the server's origin with the client library (the app serves no static files)."""
    page = new_page()
    page.goto(f"{server.http_url}/api/stats")
    page.add_script_tag(path=str(CLIENT_JS))
    return page


def sockets_of(server: ServerProcess, room: str) -> set[str]:
    response = httpx.get(f"{server.http_url}/api/rooms/{room}/sockets", timeout=10)
    assert response.status_code == 200, response.text
    return set(response.json())


def heard_arrive(page: Page, member: str) -> None:
    """The watcher heard ``member`` arrive. Only then may it leave: the demo announces
    presence in bursts, and a member who comes and goes within one is never announced."""
    page.wait_for_function("id => window.came.includes(id)", arg=member, timeout=WAIT_MS)


def left_at_once(page: Page, member: str) -> None:
    """The watcher hears ``member`` leave: within WAIT_MS (10 s), a sixth of the recovery
    window at most, so that a parked member (announced only when the window ends) fails."""
    assert WAIT_MS / 1000 <= WINDOW / 6
    page.wait_for_function("id => window.gone.includes(id)", arg=member, timeout=WAIT_MS)


def test_a_member_who_closes_leaves_at_once_on_every_server(
    new_page: Callable[[], Page], server: ServerProcess
) -> None:
    page = room_page(new_page, server)
    watcher = page.evaluate(WATCH, ["w", "/ws/chat/closing/?name=watcher"])
    member = page.evaluate(
        "async () => { window.m = new wsmanager.Client('/ws/chat/closing/?name=ann');"
        " return await window.m.connect(); }"
    )
    assert sockets_of(server, "closing") == {watcher, member}
    heard_arrive(page, member)
    page.evaluate("window.m.close()")
    left_at_once(page, member)
    assert sockets_of(server, "closing") == {watcher}
    page.evaluate("window.w.close()")


def test_a_member_whose_page_is_closed_leaves_at_once_on_every_server(
    new_page: Callable[[], Page], server: ServerProcess
) -> None:
    page = room_page(new_page, server)
    watcher = page.evaluate(WATCH, ["w", "/ws/chat/unloaded/?name=watcher"])
    other = room_page(new_page, server)
    member = other.evaluate(
        "async () => { window.m = new wsmanager.Client('/ws/chat/unloaded/?name=ann');"
        " return await window.m.connect(); }"
    )
    heard_arrive(page, member)
    other.close()
    left_at_once(page, member)
    assert sockets_of(server, "unloaded") == {watcher}
    page.evaluate("window.w.close()")
