"""The browser client's streams against a real server (tests/e2e/streams_app.py on daphne), in
Chromium: ``for await (const item of client.stream(...))`` gets 10,000 items complete and in
order; ``break`` and an aborted ``AbortSignal`` both end the stream on the server (its
generator's ``finally`` runs); a refused call rejects with its code."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import CLIENT_JS
from tests.servers import DaphneProcess

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def streams_server() -> Iterator[DaphneProcess]:
    server = DaphneProcess(app="tests.e2e.streams_app:application", env={"DEMO_DB": ":memory:"}).start()
    yield server
    server.stop()


@pytest.fixture
def page(new_page: Callable[[], Page], streams_server: DaphneProcess) -> Page:
    """A page of the server's origin with the client library, and ``window.client`` connected."""
    page = new_page()
    page.goto(f"{streams_server.http_url}/")
    if not page.evaluate("typeof wsmanager !== 'undefined'"):
        page.add_script_tag(path=str(CLIENT_JS))
    page.evaluate(
        """async () => {
            window.client = new wsmanager.Client("/ws/streams/");
            await window.client.connect();
        }"""
    )
    return page


def run(page: Page, script: str, *args: Any) -> Any:
    return page.evaluate(script, list(args))


def test_ten_thousand_items_arrive_complete_and_in_order(page: Page) -> None:
    name = uuid.uuid4().hex
    result = run(
        page,
        """async ([name]) => {
            const items = [];
            for await (const item of client.stream("count", 10000, name)) items.push(item);
            const inOrder = items.every((item, i) => item === i);
            return {length: items.length, inOrder, report: await client.invoke("report", name)};
        }""",
        name,
    )
    assert result == {"length": 10_000, "inOrder": True, "report": {"produced": 10_000, "closed": True}}


@pytest.mark.parametrize("window", [1, 64, 300])
def test_any_window_completes_whatever_the_handlers_credit_settings(page: Page, window: int) -> None:
    """/ws/streams-tight/: stream_credit 4 and max_stream_credit 16, announced by the first item."""
    result = run(
        page,
        """async ([name, window]) => {
            const tight = new wsmanager.Client("/ws/streams-tight/");
            await tight.connect();
            const items = [];
            for await (const item of tight.stream("count", 1000, name, {window})) items.push(item);
            await tight.close();
            return {length: items.length, inOrder: items.every((item, i) => item === i)};
        }""",
        uuid.uuid4().hex,
        window,
    )
    assert result == {"length": 1000, "inOrder": True}


def test_break_ends_the_stream_on_the_server(page: Page) -> None:
    name = uuid.uuid4().hex
    result = run(
        page,
        """async ([name]) => {
            let seen = 0;
            for await (const item of client.stream("count", 1e9, name)) {
                seen += 1;
                if (item === 99) break;
            }
            const closed = await client.invoke("until_closed", name);
            const again = [];
            for await (const item of client.stream("count", 3, name + "-again")) again.push(item);
            return {seen, closed, again, report: await client.invoke("report", name)};
        }""",
        name,
    )
    assert result["seen"] == 100 and result["closed"] is True and result["again"] == [0, 1, 2]
    assert 100 < result["report"]["produced"] <= 100 + 64 + 1  # at most a window ahead


def test_an_abort_cancels_the_stream_at_once_while_the_loop_body_awaits(page: Page) -> None:
    """The loop body is held at the first item: the abort sends rpc.cancel without waiting for
    the loop's next turn, so the server's generator is closed meanwhile."""
    result = run(
        page,
        """async ([name]) => {
            const controller = new AbortController();
            let release, arrived;
            const hold = new Promise((resolve) => (release = resolve));
            const first = new Promise((resolve) => (arrived = resolve));
            const consume = (async () => {
                for await (const _ of client.stream("count", 1e9, name, {signal: controller.signal})) {
                    arrived();
                    await hold;
                }
            })().then(
                () => "ended",
                (error) => (error === controller.signal.reason ? "aborted" : String(error)),
            );
            await first;
            controller.abort();
            const closed = await client.invoke("until_closed", name);
            release();
            return {closed, outcome: await consume};
        }""",
        uuid.uuid4().hex,
    )
    assert result == {"closed": True, "outcome": "aborted"}


def test_an_aborted_signal_cancels_the_stream(page: Page) -> None:
    name = uuid.uuid4().hex
    result = run(
        page,
        """async ([name]) => {
            const controller = new AbortController();
            const items = [];
            let error = null;
            try {
                for await (const item of client.stream("count", 1e9, name, {signal: controller.signal})) {
                    items.push(item);
                    if (item === 9) controller.abort(new Error("enough"));
                }
            } catch (err) {
                error = err.message;
            }
            return {items: items.length, error, closed: await client.invoke("until_closed", name)};
        }""",
        name,
    )
    assert result == {"items": 10, "error": "enough", "closed": True}


def test_a_refused_stream_rejects_with_its_code(page: Page) -> None:
    result = run(
        page,
        """async () => {
            try {
                for await (const item of client.streamWithOptions("count", {n: "x", name: "y"})) {}
            } catch (err) {
                return {name: err.name, code: err.code};
            }
        }""",
    )
    assert result == {"name": "RpcError", "code": -32602}


def test_an_upload_from_an_async_iterable_arrives_whole(page: Page) -> None:
    """1 MB in 32 KiB chunks from an async generator; the server digests what it read."""
    result = run(
        page,
        """async () => {
            const chunk = "abcdefghijklmnopqrstuvwxyz".repeat(1261).slice(0, 32768);
            async function* chunks() {
                for (let i = 0; i < 32; i++) yield chunk;
            }
            const digest = await client.upload("digest", chunks());
            const bytes = new TextEncoder().encode(chunk.repeat(32));
            const hash = await crypto.subtle.digest("SHA-256", bytes);
            const hex = Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join("");
            return {digest, hex};
        }""",
    )
    assert result["digest"] == {"chunks": 32, "size": 32 * 32768, "sha256": result["hex"]}
