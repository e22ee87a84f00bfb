"""Connection recovery in the browser client, against a scripted server.

The test plays a server that offers recovery (docs/notes: the resume
handshake): it greets with a token and an offset, sends notifications with
offsets, drops the connection without a close frame, and checks what the
client asks for on the way back and what reaches the page's handlers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from .fake_server import FakeServer, Peer
from .test_client_protocol import events, make_client, settled, start_call, wait_events, wait_state

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# Every "note" notification the page's handler gets, in window.log beside the client's events.
NOTES = """
() => { window.c.on("note", (n) => { window.log.push({type: "note", n}); }); }
"""


def offered(token: str, offset: str, window: float = 60.0) -> dict[str, Any]:
    """rpc.connected params of a server offering recovery."""
    return {"recovery": {"token": token, "offset": offset, "window": window}}


def script(*greetings: dict[str, Any]) -> Callable[[Peer], dict[str, Any]]:
    """A FakeServer.greeting giving these params to the next connections, then nothing extra."""
    pending = list(greetings)
    return lambda peer: pending.pop(0) if pending else {}


def note(n: int, offset: str | None) -> dict[str, Any]:
    """A journaled notification as the server sends it (``offset`` beside the JSON-RPC members)."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": "note", "params": [n]}
    if offset is not None:
        message["offset"] = offset
    return message


def handled(peer: Peer) -> None:
    """Return once the page has handled every frame sent before (frames are handled in order)."""
    peer.send({"jsonrpc": "2.0", "method": "rpc.ping", "id": "sync"})
    peer.recv_until(lambda message: message.get("id") == "sync")


def notes(page: Page) -> list[int]:
    return [entry["n"] for entry in events(page, "note")]


def timeline(page: Page) -> list[str]:
    """Connection events and notes in the order the page saw them."""
    kinds = ["connected", "reconnected", "recovered", "recoveryfailed", "note"]
    return [
        entry["type"] if entry["type"] != "note" else f"note {entry['n']}"
        for entry in page.evaluate("() => window.log")
        if entry["type"] in kinds
    ]


def test_resume_keeps_the_id_and_drops_replayed_duplicates(blank_page: Page, fake_server: FakeServer) -> None:
    """After a drop the client resumes with its token and highest offset; replayed copies are dropped."""
    fake_server.greeting = script(
        offered("tok-1", "1000-0"),
        {"id": "fake-1", "recovered": True, "replayed": 3, **offered("tok-2", "1001-0")},
    )
    make_client(blank_page, fake_server.url("/ws/?name=a%20b&wsm_offset=stale"), connect=False)
    blank_page.evaluate(NOTES)
    blank_page.evaluate("window.c.connect()")
    first = fake_server.next_peer()
    # Stale resume params the app left in its URL are removed; its own are kept as written.
    assert first.path == "/ws/?name=a%20b"
    for n, offset in [(1, "1000-1"), (2, "1000-2"), (3, "1001-0")]:
        first.send(note(n, offset))
    handled(first)
    start_call(blank_page, "inflight", "slow")
    first.recv()
    first.drop()

    lost = settled(blank_page, "inflight")["error"]
    assert (lost["name"], lost["closeCode"]) == ("ConnectionLostError", 1006)
    second = fake_server.next_peer()
    assert second.query == {"name": ["a b"], "wsm_resume": ["tok-1"], "wsm_offset": ["1001-0"]}
    # The replay starts before the client's offset (a safety margin): 2 and 3 are copies.
    second.send(note(2, "1000-2"))
    second.send([note(3, "1001-0"), note(4, "1001-1")])
    second.send(note(5, "1002-0"))  # live traffic
    second.send(note(6, None))  # not journaled: no offset, always delivered
    handled(second)

    assert notes(blank_page) == [1, 2, 3, 4, 5, 6]
    assert timeline(blank_page) == [
        "connected", "note 1", "note 2", "note 3",
        "connected", "reconnected", "recovered", "note 4", "note 5", "note 6",
    ]  # fmt: skip
    (recovered,) = events(blank_page, "recovered")
    assert (recovered["id"], recovered["replayed"]) == ("fake-1", 3)
    (reconnected,) = events(blank_page, "reconnected")
    assert [reconnected[k] for k in ("id", "previousId", "recovered")] == ["fake-1", "fake-1", True]
    assert [e["recovered"] for e in events(blank_page, "connected")] == [False, True]
    assert blank_page.evaluate("window.c.id") == "fake-1"

    # The next drop resumes with the new token and the greatest offset seen since.
    second.drop()
    third = fake_server.next_peer()
    assert (third.query["wsm_resume"], third.query["wsm_offset"]) == (["tok-2"], ["1002-0"])
    # This server ignores the request (no recovery any more): the page is told.
    (failed,) = wait_events(blank_page, "recoveryfailed", 1)
    assert (failed["reason"], failed["previousId"], failed["id"]) == ("unsupported", "fake-1", "fake-3")


def test_failed_resume_starts_a_fresh_session(blank_page: Page, fake_server: FakeServer) -> None:
    """recovered: false gives "recoveryfailed" with the server's reason; the offsets seen are forgotten."""
    fake_server.greeting = script(
        offered("tok-1", "10-0"),
        {"recovered": False, "recovery_failed": "expired", **offered("tok-2", "5-0")},
    )
    make_client(blank_page, fake_server.url(), connect=False)
    blank_page.evaluate(NOTES)
    blank_page.evaluate("window.c.connect()")
    first = fake_server.next_peer()
    first.send(note(1, "10-1"))
    handled(first)
    first.drop()

    second = fake_server.next_peer()
    assert (second.query["wsm_resume"], second.query["wsm_offset"]) == (["tok-1"], ["10-1"])
    second.send(note(2, "5-1"))
    second.send(note(3, "10-1"))  # a new session: an offset seen in the old one means nothing
    handled(second)
    assert notes(blank_page) == [1, 2, 3]
    (failed,) = events(blank_page, "recoveryfailed")
    assert (failed["reason"], failed["previousId"], failed["id"]) == ("expired", "fake-1", "fake-2")
    assert events(blank_page, "recovered") == []
    assert timeline(blank_page)[-5:] == ["connected", "reconnected", "recoveryfailed", "note 2", "note 3"]
    assert events(blank_page, "reconnected")[0]["recovered"] is False

    second.drop()
    third = fake_server.next_peer()
    assert third.query["wsm_resume"] == ["tok-2"]


@pytest.mark.parametrize(
    ("code", "resumes"),
    [(1001, True), (1011, True), (1012, True), (1009, False), (1013, False), (4000, False), (4500, False)],
)
def test_which_losses_resume(blank_page: Page, fake_server: FakeServer, code: int, resumes: bool) -> None:
    """Going away, server error and restart resume; other retried codes get a fresh socket, unasked."""
    fake_server.greeting = script(offered("tok-1", "1-0"))
    make_client(blank_page, fake_server.url())
    fake_server.next_peer().close(code)
    second = fake_server.next_peer()
    assert ("wsm_resume" in second.query) is resumes
    wait_events(blank_page, "reconnected", 1)
    # A fresh socket that was not asked to resume is no failed recovery.
    assert len(events(blank_page, "recoveryfailed")) == (1 if resumes else 0)


def test_refused_attempts_keep_asking(blank_page: Page, fake_server: FakeServer) -> None:
    """Attempts that fail (handshake refused) do not end the resume: every one within the window asks."""
    fake_server.greeting = script(offered("tok-1", "7-0"), {"id": "fake-1", "recovered": True, "replayed": 0})
    make_client(blank_page, fake_server.url())
    first = fake_server.next_peer()
    fake_server.refuse = 2
    first.drop()
    second = fake_server.next_peer()
    assert len(fake_server.refused_paths) == 2
    for path in [*fake_server.refused_paths, second.path]:
        assert path == "/ws/?wsm_resume=tok-1&wsm_offset=7-0"
    assert wait_events(blank_page, "recovered", 1)[0]["id"] == "fake-1"


def test_no_resume_after_the_window(blank_page: Page, fake_server: FakeServer) -> None:
    """A retry that starts after the window ends (its delay is longer) does not ask to resume."""
    fake_server.greeting = script(offered("tok-1", "1-0", window=0.05))
    make_client(blank_page, fake_server.url(), reconnectDelay=300, reconnectJitter=0)
    fake_server.next_peer().drop()
    assert "wsm_resume" not in fake_server.next_peer().query
    wait_events(blank_page, "reconnected", 1)
    assert events(blank_page, "recoveryfailed") == []


def test_opting_out_and_own_close_do_not_resume(blank_page: Page, fake_server: FakeServer) -> None:
    """With recover: false, and after the client's own close(), the next socket is fresh."""
    fake_server.greeting = lambda peer: offered(f"tok-{peer.id}", "1-0")
    make_client(blank_page, fake_server.url(), name="off", recover=False)
    assert blank_page.evaluate("window.off.options.recover") is False
    fake_server.next_peer().drop()
    assert "wsm_resume" not in fake_server.next_peer().query

    make_client(blank_page, fake_server.url())
    fake_server.next_peer()
    blank_page.wait_for_function("window.c.id !== null")
    blank_page.evaluate("window.c.close()")
    blank_page.evaluate("window.c.connect()")
    assert "wsm_resume" not in fake_server.next_peer().query


def test_resumed_elsewhere_is_final(blank_page: Page, fake_server: FakeServer) -> None:
    """4409 (another connection took the session over) closes the client for good."""
    fake_server.greeting = script(offered("tok-1", "1-0"))
    make_client(blank_page, fake_server.url())
    peer = fake_server.next_peer()
    blank_page.wait_for_function("window.c.id !== null")
    peer.close(4409, "resumed elsewhere")
    wait_state(blank_page, "closed")
    (close,) = events(blank_page, "close")
    assert (close["code"], close["reason"], close["willReconnect"]) == (4409, "resumed elsewhere", False)
    assert events(blank_page, "reconnecting") == []
    assert blank_page.evaluate("wsmanager.CloseCodes.RESUMED_ELSEWHERE") == 4409
