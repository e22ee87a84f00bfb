"""The demo chat in real browsers against a real daphne: people chatting, whispering, members."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tests.servers import DaphneProcess

from .chat_page import ChatPage, tid

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture
def chat_page(new_page: Callable[[], Page], demo_server: DaphneProcess) -> Callable[..., ChatPage]:
    def make(room: str | None = None, name: str | None = None, **options: int) -> ChatPage:
        return ChatPage(new_page(), demo_server.http_url).open(room, name, **options)

    return make


def test_two_pages_chat(chat_page: Callable[..., ChatPage]) -> None:
    """Two people in a room see each other online and each other's messages."""
    alice = chat_page()
    alice.join("two-pages", "alice")
    alice_id = alice.wait_connected()
    bob = chat_page("two-pages", "bob")
    bob_id = bob.wait_connected()
    alice.wait_online({alice_id, bob_id})
    bob.wait_online({alice_id, bob_id})

    alice.send("hello bob")
    assert bob.wait_message("hello bob") == {"private": False, "from": alice_id}
    assert alice.wait_message("hello bob") == {"private": False, "from": alice_id}
    bob.send("hi alice")
    alice.wait_message("hi alice")
    assert alice.messages() == ["hello bob", "hi alice"]
    bob.wait_message("hi alice")
    assert bob.messages() == ["hello bob", "hi alice"]


def test_whisper_reaches_only_its_target(chat_page: Callable[..., ChatPage]) -> None:
    """A whisper (click a member, type) reaches that member only, marked private."""
    alice = chat_page("whisper", "alice")
    bob = chat_page("whisper", "bob")
    carol = chat_page("whisper", "carol")
    ids = {page.wait_connected() for page in (alice, bob, carol)}
    for page in (alice, bob, carol):
        page.wait_online(ids)
    bob_id = bob.socket_id

    alice.whisper(bob_id, "only for bob")
    assert bob.wait_message("only for bob")["private"] is True
    assert alice.wait_message("only for bob")["private"] is True  # the sender's own copy
    # A public message sent after the whisper arrived: once carol has it, she has all she gets.
    alice.page.click(tid("whisper-cancel"))
    alice.send("for everyone")
    carol.wait_message("for everyone")
    bob.wait_message("for everyone")
    assert carol.messages() == ["for everyone"]
    assert bob.messages() == ["only for bob", "for everyone"]


def test_member_list_follows_joins_renames_and_leaves(chat_page: Callable[..., ChatPage]) -> None:
    """The online list shows who is there, with socket ids, and follows joined/renamed/left."""
    alice = chat_page("members", "alice")
    alice_id = alice.wait_connected()
    bob = chat_page("members", "bob")
    bob_id = bob.wait_connected()
    alice.wait_online({alice_id, bob_id})

    bob.join("members", "robert")  # same room, new name: set_name
    alice.page.wait_for_function(
        'id => document.querySelector(`[data-testid=online] [data-socket-id="${id}"]`)'
        ".textContent.includes('robert')",
        arg=bob_id,
    )
    bob.page.close()
    alice.wait_online({alice_id})


def test_errors_are_shown_with_their_codes(chat_page: Callable[..., ChatPage]) -> None:
    """An empty message is refused by the server; the page shows the error and its code."""
    alice = chat_page("errors", "alice")
    alice.wait_connected()
    alice.send("")
    alice.page.wait_for_selector(f"{tid('error')}:not([hidden])")
    assert alice.page.get_attribute(tid("error"), "data-code") == "4000"
    assert alice.messages() == []


def test_status_is_disconnected_before_joining(chat_page: Callable[..., ChatPage]) -> None:
    """The page starts disconnected and shows connected once joined."""
    page = chat_page()
    assert page.status() == "disconnected"
    page.join("status", "dora")
    page.wait_connected()


def test_a_room_larger_than_who_lists_says_how_many_more(
    chat_page: Callable[..., ChatPage], demo_server: DaphneProcess
) -> None:
    """101 sockets in a room, then the page: who() lists 100 members, the page shows them and
    itself (it may not be among the 100) and says how many more there are."""
    from websockets.sync.client import connect

    url = f"{demo_server.ws_url}/ws/chat/crowded/"
    with contextlib.ExitStack() as crowd:
        for _ in range(101):  # each reads everything in the background, quietly
            ws = crowd.enter_context(connect(url, max_queue=None, ping_interval=None))
            ws.recv(timeout=10)  # rpc.connected: it is in the room
        page = chat_page("crowded", "late")
        own = page.wait_connected()
        more = page.page.locator(f"{tid('online')} li.muted", has_text="more")
        more.wait_for(timeout=10_000)
        listed = [sid for sid in page.online_ids() if sid]
        assert own in listed and len(listed) == 101
        assert more.inner_text() == "and 1 more"  # 102 members: 100 listed, the page, one more


def test_a_shared_text_file_reaches_the_room(chat_page: Callable[..., ChatPage]) -> None:
    """ "Share a file" uploads the file's text in chunks (client.upload from an async generator);
    both pages show it as one message naming the file."""
    alice = chat_page()
    alice.join("share-file", "alice")
    alice_id = alice.wait_connected()
    bob = chat_page("share-file", "bob")
    bob.wait_connected()
    text = "a line of notes\n" * 3000  # 48,000 characters: three chunks of 16K
    alice.page.set_input_files(
        tid("file-input"), files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": text.encode()}]
    )
    assert bob.wait_message(text) == {"private": False, "from": alice_id}
    alice.wait_message(text)
    assert bob.page.text_content(tid("shared-file")) == "file notes.txt"
