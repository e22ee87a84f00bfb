"""A page object for the demo chat: what a person does and sees, by ``data-testid``.

Every wait is a bounded ``wait_for_function`` on the page (the page's default
timeout, see conftest.WAIT_MS); nothing sleeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from playwright.sync_api import Page


def tid(name: str) -> str:
    """The CSS selector of the element with this ``data-testid``."""
    return f'[data-testid="{name}"]'


class ChatPage:
    """The demo page at ``/`` driven like a user, plus a look at its client's event log."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url

    def open(self, room: str | None = None, name: str | None = None, **client_options: int) -> ChatPage:
        """Load the page; with ``room`` it joins at once (``client_options``: ms, or recover=0; chat.js)."""
        query = {k: v for k, v in {"room": room, "name": name, **client_options}.items() if v is not None}
        self.page.goto(f"{self.base_url}/?{urlencode(query)}" if query else f"{self.base_url}/")
        return self

    def join(self, room: str, name: str) -> None:
        """Fill in the form and press Join."""
        self.page.fill(tid("name-input"), name)
        self.page.fill(tid("room-input"), room)
        self.page.click(tid("join-button"))

    # --- what the page shows ---

    def status(self) -> str:
        return self.page.text_content(tid("status")) or ""

    def wait_status(self, status: str) -> None:
        self.page.wait_for_function(
            "s => document.querySelector('[data-testid=status]').textContent === s", arg=status
        )

    @property
    def socket_id(self) -> str:
        """The id of the page's current socket (the client's ``id``)."""
        return str(self.page.evaluate("demoChat.client.id"))

    def wait_connected(self) -> str:
        """Wait until connected and the member list includes this socket; return its id."""
        self.wait_status("connected")
        self.page.wait_for_function(
            "() => demoChat.client.id && document.querySelector("
            '`[data-testid=online] [data-socket-id="${demoChat.client.id}"]`)'
        )
        return self.socket_id

    def online_ids(self) -> list[str]:
        return list(
            self.page.eval_on_selector_all(f"{tid('online')} > *", "els => els.map(e => e.dataset.socketId)")
        )

    def wait_online(self, ids: set[str]) -> None:
        """Wait until the member list holds exactly these socket ids."""
        self.page.wait_for_function(
            """ids => {
                const shown = [...document.querySelectorAll('[data-testid=online] > *')]
                    .map(e => e.dataset.socketId).sort();
                return JSON.stringify(shown) === JSON.stringify(ids);
            }""",
            arg=sorted(ids),
        )

    def messages(self) -> list[str]:
        """The text of every message shown, in order."""
        return list(
            self.page.eval_on_selector_all(
                f"{tid('messages')} > *", "els => els.map(e => e.querySelector('.text').textContent)"
            )
        )

    def wait_message(self, text: str) -> dict[str, Any]:
        """Wait for a message with exactly this text; return its classes and sender."""
        handle = self.page.wait_for_function(
            """text => {
                for (const li of document.querySelectorAll('[data-testid=messages] > *')) {
                    if (li.querySelector('.text').textContent === text) {
                        return {private: li.classList.contains('private'), from: li.dataset.from};
                    }
                }
                return null;
            }""",
            arg=text,
        )
        return dict(handle.json_value())

    # --- what a person does ---

    def send(self, text: str) -> None:
        self.page.fill(tid("message-input"), text)
        self.page.click(tid("send-button"))

    def whisper(self, to: str, text: str) -> None:
        """Click the member ``to`` in the list, then type and press Enter."""
        self.page.click(f'{tid("online")} [data-socket-id="{to}"]')
        self.page.fill(tid("message-input"), text)
        self.page.press(tid("message-input"), "Enter")

    # --- the client underneath ---

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The client events of this kind logged by chat.js (reconnecting, connected, close...)."""
        return list(self.page.evaluate("k => demoChat.log.filter(e => e.type === k)", kind))

    def wait_events(self, kind: str, count: int) -> list[dict[str, Any]]:
        self.page.wait_for_function(
            "([k, n]) => demoChat.log.filter(e => e.type === k).length >= n", arg=[kind, count]
        )
        return self.events(kind)
