"""Connection recovery in Chromium against a real daphne: the demo page survives a network cut.

Alice's page reaches the server through a TCP proxy the test controls
(tcp_proxy.TcpProxy); Bob's page connects directly. The proxy resets Alice's
connection (no close frame) and refuses her retries while Bob sends to the
room and whispers to her; then it lets her through again. Also: a failed
recovery (the server restarted, in memory), a drop longer than the window,
and, on Redis, a resume on another process after SIGKILL of the first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from tests import redis_support
from tests.e2e.client import cluster_env
from tests.servers import DaphneProcess

from .chat_page import ChatPage, tid
from .tcp_proxy import TcpProxy

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

redis_url = redis_support.redis_url

FAST_RETRY = {"reconnectDelay": 300, "reconnectMaxDelay": 300}
RECOVERY_ENV = {"WSMANAGER_RECOVERY_WINDOW": "60"}
FAILURE_REASONS = {"expired", "unknown", "overflow", "lost", "refused"}

# Before the page's scripts: keep every notification each WebSocket of the page receives.
RECORD_FRAMES = """
(() => {
    const Native = window.WebSocket;
    window.received = [];
    window.WebSocket = class extends Native {
        constructor(...args) {
            super(...args);
            this.addEventListener("message", (event) => {
                const message = JSON.parse(event.data);
                for (const item of Array.isArray(message) ? message : [message]) {
                    if (item.method && item.id === undefined) window.received.push(item);
                }
            });
        }
    };
})();
"""
# How many times member `id` was announced as gone ("left", or in a "presence" burst).
COUNT_LEFT = """
(id) => window.received.filter((n) =>
    (n.method === "left" && n.params.id === id) ||
    (n.method === "presence" && n.params.left.includes(id))).length
"""
# How many times member `id` was announced as arriving ("joined", or in a "presence" burst).
COUNT_JOINED = """
(id) => window.received.filter((n) =>
    (n.method === "joined" && n.params.id === id) ||
    (n.method === "presence" && n.params.joined.some((m) => m.id === id))).length
"""

# Records, on every change of the member list, whether member `id` was missing from it.
WATCH_MEMBER = """
(id) => {
    window.missing = 0;
    const list = document.querySelector('[data-testid=online]');
    new MutationObserver(() => {
        if (!list.querySelector(`[data-socket-id="${id}"]`)) window.missing += 1;
    }).observe(list, {childList: true, subtree: true});
}
"""


@pytest.fixture(scope="module")
def recovery_server() -> Iterator[DaphneProcess]:
    """The demo on daphne with a 60 s recovery window (in memory: one process)."""
    server = DaphneProcess(env=RECOVERY_ENV).start()
    yield server
    server.stop()


@pytest.fixture
def proxy_to() -> Iterator[Callable[[int], TcpProxy]]:
    """Start proxies to these ports; all stopped at the end."""
    started: list[TcpProxy] = []

    def start(port: int) -> TcpProxy:
        started.append(TcpProxy(port).start())
        return started[-1]

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def proxy(recovery_server: DaphneProcess, proxy_to: Callable[[int], TcpProxy]) -> TcpProxy:
    """A proxy to the recovery server."""
    return proxy_to(recovery_server.port)


def test_a_cut_page_comes_back_with_what_it_missed(
    new_page: Callable[[], Page], recovery_server: DaphneProcess, proxy: TcpProxy
) -> None:
    """Same socket id, each missed message once and in order, and Bob never saw Alice leave."""
    alice = ChatPage(new_page(), proxy.http_url).open("cut", "alice", **FAST_RETRY)
    bob_page = new_page()
    bob_page.add_init_script(RECORD_FRAMES)
    bob = ChatPage(bob_page, recovery_server.http_url).open("cut", "bob")
    alice_id, bob_id = alice.wait_connected(), bob.wait_connected()
    for page in (alice, bob):
        page.wait_online({alice_id, bob_id})
    bob.page.evaluate(WATCH_MEMBER, alice_id)
    alice.send("before the cut")
    bob.wait_message("before the cut")
    alice.wait_message("before the cut")

    assert proxy.cut() >= 2  # Alice's WebSocket, both sides
    alice.wait_status("reconnecting")
    (close,) = alice.events("close")
    assert (close["code"], close["willReconnect"]) == (1006, True)
    proxy.wait_refused(1)  # Alice is retrying and the network is still down

    # Each send waits for Bob's own copy, so the server handles them in this order.
    bob.send("missed one")
    bob.wait_message("missed one")
    bob.whisper(alice_id, "psst, alice")
    assert bob.wait_message("psst, alice")["private"] is True  # the whisper was accepted
    bob.page.click(tid("whisper-cancel"))
    bob.send("missed two")
    bob.wait_message("missed two")
    proxy.wait_refused(proxy.refused + 1)  # still cut after the sends

    proxy.admit()
    alice.wait_status("connected")
    (recovered,) = alice.wait_events("recovered", 1)
    assert recovered["id"] == alice_id
    assert alice.socket_id == alice_id
    assert alice.events("recoveryfailed") == []
    assert alice.events("reconnected")[-1]["previousId"] == alice_id
    alice.page.wait_for_selector(f"{tid('notice')}[data-kind=recovered]")

    bob.send("live again")
    alice.wait_message("live again")
    assert alice.messages() == ["before the cut", "missed one", "psst, alice", "missed two", "live again"]
    assert alice.wait_message("psst, alice") == {"private": True, "from": bob_id}
    alice.wait_online({alice_id, bob_id})
    bob.wait_online({alice_id, bob_id})
    assert bob.page.evaluate("window.missing") == 0
    assert bob.page.evaluate(COUNT_LEFT, alice_id) == bob.page.evaluate(COUNT_JOINED, alice_id) == 0
    # And the way back works: Alice's messages reach Bob.
    alice.send("thanks")
    bob.wait_message("thanks")


def test_a_failed_recovery_is_shown_and_the_page_refreshes(
    new_page: Callable[[], Page], daphne: Callable[..., DaphneProcess]
) -> None:
    """A server restarted (in memory: the session is gone): the page says so and re-reads members."""
    server = daphne(env=RECOVERY_ENV)
    alice = ChatPage(new_page(), server.http_url).open("restart", "alice", **FAST_RETRY)
    bob = ChatPage(new_page(), server.http_url).open("restart", "bob", **FAST_RETRY)
    old_ids = {alice.wait_connected(), bob.wait_connected()}
    alice.wait_online(old_ids)
    alice.send("before the restart")
    alice.wait_message("before the restart")

    server.kill()
    alice.wait_status("reconnecting")
    daphne(port=server.port, env=RECOVERY_ENV)

    (failed,) = alice.wait_events("recoveryfailed", 1)
    assert failed["reason"] in FAILURE_REASONS
    assert failed["previousId"] in old_ids and failed["id"] not in old_ids
    alice.page.wait_for_selector(f"{tid('notice')}[data-kind=failed]")
    assert "recovery failed" in (alice.page.text_content(tid("notice")) or "")
    new_ids = {alice.wait_connected(), bob.wait_connected()}
    assert not new_ids & old_ids
    alice.wait_online(new_ids)  # re-read with who(), the old ids gone
    bob.wait_online(new_ids)
    assert alice.messages() == ["before the restart"]  # kept on screen
    bob.send("after the restart")
    alice.wait_message("after the restart")


def test_a_drop_longer_than_the_window_is_a_new_member(
    new_page: Callable[[], Page], daphne: Callable[..., DaphneProcess], proxy_to: Callable[[int], TcpProxy]
) -> None:
    """Past the window Alice is announced gone once, comes back with a new id and without the gap."""
    server = daphne(env={"WSMANAGER_RECOVERY_WINDOW": "1"})
    proxy = proxy_to(server.port)
    alice = ChatPage(new_page(), proxy.http_url).open("too-long", "alice", **FAST_RETRY)
    bob_page = new_page()
    bob_page.add_init_script(RECORD_FRAMES)
    bob = ChatPage(bob_page, server.http_url).open("too-long", "bob")
    old_id, bob_id = alice.wait_connected(), bob.wait_connected()
    bob.wait_online({old_id, bob_id})

    proxy.cut()
    alice.wait_status("reconnecting")
    bob.send("while alice is away")
    bob.wait_online({bob_id})  # the window ended: the server announced her gone
    proxy.admit()

    new_id = alice.wait_connected()
    assert new_id != old_id
    assert alice.events("recovered") == []
    last = alice.events("reconnected")[-1]
    assert (last["previousId"], last["recovered"]) == (old_id, False)
    alice.page.wait_for_selector(f"{tid('notice')}:is([data-kind=fresh], [data-kind=failed])")
    bob.wait_online({new_id, bob_id})
    alice.wait_online({new_id, bob_id})  # re-read with who()
    bob.send("welcome back")
    alice.wait_message("welcome back")
    assert alice.messages() == ["welcome back"]  # what was sent in the gap is lost
    assert bob.page.evaluate(COUNT_LEFT, old_id) == 1


@pytest.mark.redis
def test_a_page_resumes_on_another_process_after_sigkill(
    new_page: Callable[[], Page],
    daphne: Callable[..., DaphneProcess],
    proxy_to: Callable[[int], TcpProxy],
    redis_url: str,
) -> None:
    """Alice's process is killed; the proxy sends her to the survivor, where her session goes on."""
    env = cluster_env(redis_url, WSMANAGER_RECOVERY_WINDOW="60", WSMANAGER_HEARTBEAT="0.5")
    doomed, survivor = daphne(env=env), daphne(env=env)
    proxy = proxy_to(doomed.port)
    alice = ChatPage(new_page(), proxy.http_url).open("sigkill", "alice", **FAST_RETRY)
    bob_page = new_page()
    bob_page.add_init_script(RECORD_FRAMES)
    bob = ChatPage(bob_page, survivor.http_url).open("sigkill", "bob")
    alice_id, bob_id = alice.wait_connected(), bob.wait_connected()
    for page in (alice, bob):
        page.wait_online({alice_id, bob_id})
    bob.page.evaluate(WATCH_MEMBER, alice_id)

    proxy.cut()  # refuse Alice's attempts until the survivor takes her
    proxy.retarget(survivor.port)
    doomed.kill()
    alice.wait_status("reconnecting")
    bob.send("after the kill")
    bob.wait_message("after the kill")
    bob.whisper(alice_id, "still there?")
    assert bob.wait_message("still there?")["private"] is True
    bob.page.click(tid("whisper-cancel"))
    proxy.wait_refused(1)
    proxy.admit()

    (recovered,) = alice.wait_events("recovered", 1)
    assert recovered["id"] == alice.socket_id == alice_id
    bob.send("live")
    alice.wait_message("live")
    assert alice.messages() == ["after the kill", "still there?", "live"]
    alice.wait_online({alice_id, bob_id})
    assert bob.page.evaluate("window.missing") == 0
    assert bob.page.evaluate(COUNT_LEFT, alice_id) == 0
