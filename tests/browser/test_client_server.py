"""The browser client against the real server: many sockets, calls both ways, errors, timeouts."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.e2e.client import TLS
from tests.servers import DaphneProcess

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

SOCKET_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")

# Calls a client method and reports how it settled, instead of throwing across evaluate().
SETTLE = """
async ([client, method, params, options]) => {
    try {
        return {result: await window[client].invokeWithOptions(method, params, options)};
    } catch (err) {
        return {error: {name: err.name, code: err.code, message: err.message, data: err.data,
                        reason: err.reason, closeCode: err.closeCode}};
    }
}
"""


@pytest.fixture
def page(new_page: Callable[[], Page], demo_server: DaphneProcess) -> Page:
    """The demo page, not joined: only for its copy of the client library and its origin."""
    page = new_page()
    page.goto(f"{demo_server.http_url}/")
    return page


def connect(page: Page, name: str, path: str, options: dict[str, object] | None = None) -> str:
    """Create ``window[name] = new Client(path, options)``, connect, and return its id."""
    return str(
        page.evaluate(
            """async ([name, path, options]) => {
                window[name] = new wsmanager.Client(path, options);
                return await window[name].connect();
            }""",
            [name, path, options or {}],
        )
    )


def call(
    page: Page,
    client: str,
    method: str,
    params: list[object] | dict[str, object] | None = None,
    **options: object,
) -> dict[str, Any]:
    return dict(page.evaluate(SETTLE, [client, method, params if params is not None else [], options]))


def test_twelve_simultaneous_connections(page: Page) -> None:
    """One page opens 12 sockets at once; each gets its own id and can call who()."""
    result = page.evaluate(
        """async (n) => {
            const clients = Array.from(
                {length: n}, (_, i) => new wsmanager.Client(`/ws/chat/dozen/?name=c${i}`));
            const ids = await Promise.all(clients.map((c) => c.connect()));
            const members = await Promise.all(clients.map((c) => c.invoke("who")));
            clients.forEach((c) => c.close());
            return {ids, members: members.map((list) => list.map((m) => m.id).sort())};
        }""",
        12,
    )
    ids = result["ids"]
    assert len(set(ids)) == 12
    assert all(SOCKET_ID.match(socket_id) for socket_id in ids)
    for members in result["members"]:
        assert members == sorted(ids)


def test_browser_calls_server(page: Page) -> None:
    """invoke() resolves with the server's result: who() lists this socket with its name."""
    socket_id = connect(page, "c", "/ws/chat/calls/?name=zed")
    assert call(page, "c", "who") == {"result": [{"id": socket_id, "name": "zed"}]}
    assert call(page, "c", "set_name", ["zoe"]) == {"result": "zoe"}
    assert call(page, "c", "rpc.ping") == {"result": "pong"}


def test_server_errors_reject_with_their_codes(page: Page) -> None:
    """Errors from the server reject invoke() with an RpcError carrying code and message."""
    connect(page, "c", "/ws/chat/errors/")
    empty = call(page, "c", "send", [""])["error"]
    assert empty["name"] == "RpcError"
    assert empty["code"] == 4000
    missing = call(page, "c", "no_such_method")["error"]
    assert (missing["name"], missing["code"], missing["message"]) == ("RpcError", -32601, "Method not found")
    bad_params = call(page, "c", "send", [])["error"]
    assert bad_params["code"] == -32602
    unknown_member = call(page, "c", "whisper", ["nobody", "hi"])["error"]
    assert unknown_member["code"] == 4004


def test_server_calls_browser(page: Page, demo_server: DaphneProcess) -> None:
    """The server invokes handlers registered with on(): results, thrown errors, unknown methods, timeouts."""
    socket_id = connect(page, "c", "/ws/chat/served/")
    page.evaluate(
        """() => {
            const c = window.c;
            c.on("add", (a, b) => a + b);
            c.on("later", (x) => new Promise((resolve) => setTimeout(() => resolve({echo: x}), 20)));
            c.on("greet", ({name}) => `hello ${name}`);
            c.on("refuse", () => { throw new wsmanager.RpcError(4321, "Refused", {why: "test"}); });
            c.on("crash", () => { throw new Error("boom"); });
            c.on("hang", () => new Promise(() => {}));
        }"""
    )

    def invoke(method: str, params: object, timeout: float = 5) -> httpx.Response:
        body = {"method": method, "params": params, "timeout": timeout}
        url = f"{demo_server.http_url}/api/sockets/{socket_id}/invoke"
        return httpx.post(url, json=body, timeout=30, verify=TLS)

    response = invoke("add", [2, 3])
    assert (response.status_code, response.json()) == (200, {"result": 5})
    assert invoke("later", ["x"]).json() == {"result": {"echo": "x"}}
    assert invoke("greet", {"name": "server"}).json() == {"result": "hello server"}

    refused = invoke("refuse", [])
    assert refused.status_code == 502
    assert refused.json()["error"] == {"code": 4321, "message": "Refused", "data": {"why": "test"}}
    crashed = invoke("crash", [])
    assert (crashed.status_code, crashed.json()["error"]["code"]) == (502, -32603)
    missing = invoke("nothing_here", [])
    assert (missing.status_code, missing.json()["error"]["code"]) == (502, -32601)
    assert invoke("hang", [], timeout=0.5).status_code == 504
    # The socket is still fine afterwards.
    assert invoke("add", [1, 1]).json() == {"result": 2}


def test_client_side_timeout(new_page: Callable[[], Page], daphne: Callable[..., DaphneProcess]) -> None:
    """An unanswered call rejects with InvokeTimeoutError in time; its late answer is ignored."""
    server = daphne()
    page = new_page()
    page.goto(f"{server.http_url}/")
    connect(page, "c", "/ws/chat/timeout/", {"heartbeatInterval": 0})
    server.freeze()
    try:
        timed_out = call(page, "c", "who", timeout=300)["error"]
    finally:
        server.thaw()
    assert timed_out["name"] == "InvokeTimeoutError"
    # After the thaw the late answer to the first call arrives and is dropped; new calls work.
    assert call(page, "c", "rpc.ping") == {"result": "pong"}
    assert page.evaluate("window.c.state") == "open"


def test_es_module_entry_point(new_page: Callable[[], Page], demo_server: DaphneProcess) -> None:
    """wsmanager.mjs works with import() on a page without the classic script, and connects."""
    page = new_page()
    page.goto(f"{demo_server.http_url}/static/wsmanager/wsmanager.d.ts")  # a page of that origin, no script
    result = page.evaluate(
        """async () => {
            const mod = await import("/static/wsmanager/wsmanager.mjs");
            const client = new mod.Client("/ws/chat/esm/");
            const id = await client.connect();
            const who = await client.invoke("who");
            client.close();
            const same = mod.Client === globalThis.wsmanager.Client && mod.default === globalThis.wsmanager;
            return {id, who, same, exports: Object.keys(mod).sort()};
        }"""
    )
    assert SOCKET_ID.match(result["id"])
    assert result["who"] == [{"id": result["id"], "name": None}]
    assert result["same"] is True
    assert {"Client", "RpcError", "ConnectionLostError", "NotConnectedError", "InvokeTimeoutError"} <= set(
        result["exports"]
    )
