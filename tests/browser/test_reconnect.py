"""Reconnection in real browsers: the server killed and restarted, or frozen."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tests.servers import DaphneProcess

from .chat_page import ChatPage

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# Short backoff so the test moves on quickly; the cap equals the first delay, so any
# difference between delays comes from the jitter alone.
FAST_RETRY = {"reconnectDelay": 400, "reconnectMaxDelay": 400}


def test_kill_and_restart(new_page: Callable[[], Page], daphne: Callable[..., DaphneProcess]) -> None:
    """After SIGKILL and a restart on the same port the pages reconnect, rejoin and chat again."""
    server = daphne()
    alice = ChatPage(new_page(), server.http_url).open("phoenix", "alice", **FAST_RETRY)
    bob = ChatPage(new_page(), server.http_url).open("phoenix", "bob", **FAST_RETRY)
    old_ids = {alice.wait_connected(), bob.wait_connected()}
    alice.wait_online(old_ids)

    # A call in flight when the server dies: freeze it first so that the call cannot be answered.
    server.freeze()
    alice.page.evaluate(
        """() => {
            window.pending = demoChat.client.invoke("who").then(
                () => "answered", (err) => `${err.name}: ${err.message}`);
        }"""
    )
    server.kill()

    for page in (alice, bob):
        page.wait_status("reconnecting")
    lost = alice.page.evaluate("window.pending")
    assert lost.startswith("ConnectionLostError: connection lost")

    # Calls and notifications made now wait in the queue for the next connection.
    alice.page.evaluate(
        """() => {
            demoChat.client.notify("send", "queued notification");
            window.queued = demoChat.client.invoke("send", "queued call");
        }"""
    )
    # Let both clients retry at least twice against the dead port, then restart.
    alice.wait_events("reconnecting", 2)
    bob.wait_events("reconnecting", 2)
    daphne(port=server.port)

    new_ids = {alice.wait_connected(), bob.wait_connected()}
    assert not new_ids & old_ids
    # Each page rejoined the room (same URL) and refreshed its member list with who().
    alice.wait_online(new_ids)
    bob.wait_online(new_ids)
    assert alice.events("reconnected")[-1]["previousId"] in old_ids
    # Whoever is back in the room by then gets them; the sender always is.
    assert "delivered" in alice.page.evaluate("window.queued")
    alice.wait_message("queued notification")
    alice.wait_message("queued call")

    alice.send("back again")
    bob.wait_message("back again")
    bob.send("welcome back")
    alice.wait_message("welcome back")

    delays = [event["delay"] for page in (alice, bob) for event in page.events("reconnecting")]
    assert len(set(delays)) > 1, f"reconnect delays carry no jitter: {delays}"
    assert all(0 < delay <= FAST_RETRY["reconnectMaxDelay"] for delay in delays)


def test_heartbeat_detects_a_frozen_server(
    new_page: Callable[[], Page], daphne: Callable[..., DaphneProcess]
) -> None:
    """With the server stopped (SIGSTOP) pings go unanswered: the page drops the socket and retries."""
    server = daphne()
    # Without recovery: after the thaw the server might resume the session (same id) or not,
    # depending on which it reads first, the old socket's close or the new handshake.
    options = {"heartbeat": 300, "heartbeatTimeout": 600, "connectTimeout": 1000, "recover": 0, **FAST_RETRY}
    alice = ChatPage(new_page(), server.http_url).open("frozen", "alice", **options)
    first_id = alice.wait_connected()

    server.freeze()
    try:
        alice.wait_status("reconnecting")
        close = alice.wait_events("close", 1)[0]
        assert (close["code"], close["reason"], close["willReconnect"]) == (1006, "heartbeat timeout", True)
        # Attempts while frozen hang in the handshake and are given up by connectTimeout.
        alice.page.wait_for_function(
            "() => demoChat.log.some(e => e.type === 'reconnecting' && e.reason === 'connect timeout')"
        )
    finally:
        server.thaw()

    second_id = alice.wait_connected()
    assert second_id != first_id
    alice.send("thawed")
    alice.wait_message("thawed")
