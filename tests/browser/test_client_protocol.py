"""The browser client against a scripted server: the protocol corners the demo cannot produce.

The test plays the server (fake_server.FakeServer): it reads the frames the
client sends, answers or stays silent, and closes with any code.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from .conftest import CLIENT_JS
from .fake_server import FakeServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# Quiet and quick: no heartbeat pings mixed into the frames the test reads, short retries.
QUIET = {"heartbeatInterval": 0, "reconnectDelay": 50, "reconnectMaxDelay": 100}

MAKE_CLIENT = """
([name, url, options]) => {
    const client = new wsmanager.Client(url, options);
    window[name] = client;
    window.log = window.log || [];
    const fields = ["id", "previousId", "reconnect", "code", "reason", "wasClean", "willReconnect",
                    "attempt", "delay", "state", "previous", "recovered", "replayed"];
    const types = ["open", "connected", "reconnected", "close", "reconnecting", "statechange", "error",
                   "recovered", "recoveryfailed"];
    for (const type of types) {
        client.addEventListener(type, (event) => {
            const entry = {client: name, type};
            for (const f of fields) if (event[f] !== undefined) entry[f] = event[f];
            if (event.error !== undefined) entry.error = String(event.error);
            window.log.push(entry);
        });
    }
}
"""

# Starts a call and keeps how it settles in window.calls[key].
START_CALL = """
([client, key, method, params, options]) => {
    window.calls = window.calls || {};
    window.calls[key] = window[client].invokeWithOptions(method, params, options).then(
        (result) => ({result}),
        (err) => {
            const error = {};
            for (const key of ["name", "code", "message", "data", "reason", "closeCode"]) {
                if (err[key] !== undefined) error[key] = err[key];
            }
            return {error};
        });
}
"""


def make_client(page: Page, url: str, name: str = "c", connect: bool = True, **options: Any) -> None:
    page.evaluate(MAKE_CLIENT, [name, url, {**QUIET, **options}])
    if connect:
        page.evaluate("name => { window[name].connect(); }", name)


def start_call(
    page: Page, key: str, method: str, params: Any = None, client: str = "c", **options: Any
) -> None:
    page.evaluate(START_CALL, [client, key, method, [] if params is None else params, options])


def within(page: Page, expression: str, arg: Any = None, ms: int = 10_000) -> Any:
    """Await the Promise ``expression`` (a function of ``arg``) on the page, failing after ``ms``."""
    outcome = page.evaluate(
        """async ([source, arg, ms]) => {
            const promise = (0, eval)(source)(arg);
            const late = new Promise((resolve) => setTimeout(() => resolve({late: true}), ms));
            return Promise.race([promise.then((value) => ({value})), late]);
        }""",
        [expression, arg, ms],
    )
    assert "late" not in outcome, f"still pending after {ms} ms: {expression}"
    return outcome.get("value")


def settled(page: Page, key: str) -> dict[str, Any]:
    """How the call started as ``key`` settled (waits for it, boundedly)."""
    return dict(within(page, "key => window.calls[key]", key))


def events(page: Page, kind: str) -> list[dict[str, Any]]:
    return list(page.evaluate("k => window.log.filter(e => e.type === k)", kind))


def wait_state(page: Page, state: str, client: str = "c") -> None:
    page.wait_for_function("([c, s]) => window[c].state === s", arg=[client, state])


def wait_events(page: Page, kind: str, count: int) -> list[dict[str, Any]]:
    page.wait_for_function("([k, n]) => window.log.filter(e => e.type === k).length >= n", arg=[kind, count])
    return events(page, kind)


# --- client to server ------------------------------------------------------------


def test_calls_and_notifications_on_the_wire(blank_page: Page, fake_server: FakeServer) -> None:
    """invoke() sends a request with an id and resolves with the result; notify() sends no id."""
    make_client(blank_page, fake_server.url())
    peer = fake_server.next_peer()
    blank_page.wait_for_function("window.c.id === 'fake-1'")

    start_call(blank_page, "add", "add", [1, 2])
    request = peer.recv()
    assert request == {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": request["id"]}
    peer.send({"jsonrpc": "2.0", "result": 3, "id": request["id"]})
    assert settled(blank_page, "add") == {"result": 3}

    start_call(blank_page, "named", "greet", {"name": "x"})
    request = peer.recv()
    assert request["params"] == {"name": "x"}
    peer.send(
        {
            "jsonrpc": "2.0",
            "error": {"code": -32602, "message": "Invalid params", "data": [1]},
            "id": request["id"],
        }
    )
    assert settled(blank_page, "named")["error"] == {
        "name": "RpcError",
        "code": -32602,
        "message": "Invalid params",
        "data": [1],
    }

    blank_page.evaluate("window.c.notify('note', 'x', 2)")
    assert peer.recv() == {"jsonrpc": "2.0", "method": "note", "params": ["x", 2]}


def test_invoke_timeout_and_late_answer(blank_page: Page, fake_server: FakeServer) -> None:
    """An unanswered call rejects with InvokeTimeoutError; the late answer is dropped; aborting works."""
    make_client(blank_page, fake_server.url())
    peer = fake_server.next_peer()
    start_call(blank_page, "slow", "slow", [], timeout=200)
    late = peer.recv()
    assert settled(blank_page, "slow")["error"]["name"] == "InvokeTimeoutError"
    peer.send({"jsonrpc": "2.0", "result": "late", "id": late["id"]})

    blank_page.evaluate("window.abort = new AbortController()")
    blank_page.evaluate(
        """() => { window.calls.aborted = window.c
                       .invokeWithOptions("slow", [], {signal: window.abort.signal})
                       .then(r => ({result: r}), e => ({error: {name: e.name}})); }"""
    )
    peer.recv()
    blank_page.evaluate("window.abort.abort(new DOMException('stop', 'AbortError'))")
    assert settled(blank_page, "aborted") == {"error": {"name": "AbortError"}}

    start_call(blank_page, "next", "next")
    peer.send({"jsonrpc": "2.0", "result": "ok", "id": peer.recv()["id"]})
    assert settled(blank_page, "next") == {"result": "ok"}
    assert events(blank_page, "close") == []


# --- server to client ------------------------------------------------------------

HANDLERS = """
() => {
    const c = window.c;
    window.notes = [];
    c.on("add", (a, b) => a + b);
    c.on("later", (x) => new Promise((resolve) => setTimeout(() => resolve([x]), 10)));
    c.on("greet", ({name}) => `hello ${name}`);
    c.on("nothing", () => undefined);
    c.on("refuse", () => { throw new wsmanager.RpcError(4321, "Refused", {why: "test"}); });
    c.on("crash", () => { throw new Error("boom"); });
    c.on("reject", () => Promise.reject(new wsmanager.RpcError(-32602, "Invalid params")));
    c.on("note", (...args) => { window.notes.push(args); });
}
"""


def test_serves_server_calls(blank_page: Page, fake_server: FakeServer) -> None:
    """Server calls reach on() handlers: results, errors with codes, built-in rpc.ping, unknown methods."""
    make_client(blank_page, fake_server.url())
    peer = fake_server.next_peer()
    blank_page.evaluate(HANDLERS)

    def ask(method: str, params: Any = None, msg_id: Any = "s") -> Any:
        request = {"jsonrpc": "2.0", "method": method, "id": msg_id}
        if params is not None:
            request["params"] = params
        peer.send(request)
        return peer.recv()

    assert ask("rpc.ping") == {"jsonrpc": "2.0", "result": "pong", "id": "s"}
    assert ask("add", [2, 3], 7) == {"jsonrpc": "2.0", "result": 5, "id": 7}
    assert ask("later", ["x"])["result"] == ["x"]
    assert ask("greet", {"name": "server"})["result"] == "hello server"
    assert ask("nothing")["result"] is None
    assert ask("refuse")["error"] == {"code": 4321, "message": "Refused", "data": {"why": "test"}}
    crash = ask("crash")["error"]
    assert (crash["code"], crash["message"], crash["data"]) == (-32603, "Internal error", "boom")
    assert ask("reject")["error"] == {"code": -32602, "message": "Invalid params"}
    missing = ask("missing", msg_id=None)
    assert (missing["error"]["code"], missing["id"]) == (-32601, None)


def test_notifications_are_not_answered(blank_page: Page, fake_server: FakeServer) -> None:
    """A notification runs its handler and gets no answer, even when unknown or failing."""
    make_client(blank_page, fake_server.url())
    peer = fake_server.next_peer()
    blank_page.evaluate(HANDLERS)
    peer.send({"jsonrpc": "2.0", "method": "note", "params": ["a", 1]})
    peer.send({"jsonrpc": "2.0", "method": "unknown"})
    peer.send({"jsonrpc": "2.0", "method": "crash"})
    peer.send({"jsonrpc": "2.0", "method": "rpc.ping", "id": "after"})
    # Frames are handled in order, so the first answer is the ping's.
    assert peer.recv() == {"jsonrpc": "2.0", "result": "pong", "id": "after"}
    assert blank_page.evaluate("window.notes") == [["a", 1]]
    assert [e["error"] for e in events(blank_page, "error")] == ["Error: boom"]


def test_batches_and_malformed_frames(blank_page: Page, fake_server: FakeServer) -> None:
    """A batch is answered with an array (notifications left out); bad frames get -32700 / -32600."""
    make_client(blank_page, fake_server.url())
    peer = fake_server.next_peer()
    blank_page.evaluate(HANDLERS)
    peer.send(
        [
            {"jsonrpc": "2.0", "method": "add", "params": [1, 1], "id": 1},
            {"jsonrpc": "2.0", "method": "note", "params": ["in batch"]},
            {"jsonrpc": "2.0", "method": "later", "params": [2], "id": 2},
            {"jsonrpc": "2.0", "method": "nope", "id": 3},
        ]
    )
    answers = peer.recv()
    assert answers[:2] == [
        {"jsonrpc": "2.0", "result": 2, "id": 1},
        {"jsonrpc": "2.0", "result": [2], "id": 2},
    ]
    assert (answers[2]["error"]["code"], answers[2]["id"]) == (-32601, 3)
    assert len(answers) == 3

    peer.send("{not json")
    assert peer.recv()["error"]["code"] == -32700
    peer.send("[]")
    empty = peer.recv()
    assert (empty["error"]["code"], empty["id"]) == (-32600, None)
    peer.send({"jsonrpc": "1.0", "method": "add", "id": 9})
    assert peer.recv()["error"]["code"] == -32600
    # A batch of notifications only gets no answer at all.
    peer.send([{"jsonrpc": "2.0", "method": "note", "params": ["n"]}])
    peer.send({"jsonrpc": "2.0", "method": "rpc.ping", "id": "last"})
    assert peer.recv()["id"] == "last"


def test_server_error_without_id_is_an_error_event(blank_page: Page, fake_server: FakeServer) -> None:
    """An error response with id null (e.g. rate limited) is reported as an "error" event."""
    make_client(blank_page, fake_server.url())
    peer = fake_server.next_peer()
    peer.send({"jsonrpc": "2.0", "error": {"code": -32002, "message": "Rate limit exceeded"}, "id": None})
    assert wait_events(blank_page, "error", 1)[0]["error"] == "RpcError -32002: Rate limit exceeded"


# --- connection lifecycle ---------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1003, 1008, 4400, 4403, 4499])
def test_final_close_codes_stop_reconnecting(blank_page: Page, fake_server: FakeServer, code: int) -> None:
    """After 1000, 1003, 1008 or a 44xx close the client stays closed and says so."""
    make_client(blank_page, fake_server.url())
    peer = fake_server.next_peer()
    blank_page.wait_for_function("window.c.id !== null")
    peer.close(code, "go away")
    wait_state(blank_page, "closed")
    (close,) = events(blank_page, "close")
    assert (close["code"], close["reason"], close["willReconnect"]) == (code, "go away", False)
    assert events(blank_page, "reconnecting") == []
    assert blank_page.evaluate("window.c.id") is None


@pytest.mark.parametrize("code", [1001, 1009, 1011, 1013, 4000, 4500])
def test_other_close_codes_reconnect(blank_page: Page, fake_server: FakeServer, code: int) -> None:
    """After 1001, 1009, 1011, 1013 and codes outside 4400-4499 the client reconnects and gets a new id."""
    make_client(blank_page, fake_server.url())
    fake_server.next_peer().close(code)
    fake_server.next_peer()
    (reconnected,) = wait_events(blank_page, "reconnected", 1)
    assert (reconnected["previousId"], reconnected["id"]) == ("fake-1", "fake-2")
    (close,) = events(blank_page, "close")
    assert (close["code"], close["willReconnect"]) == (code, True)
    assert events(blank_page, "reconnecting")[0]["attempt"] == 1


def test_refused_handshake_is_retried(blank_page: Page, fake_server: FakeServer) -> None:
    """A refused handshake (seen as 1006 before open) is retried with backoff until accepted."""
    fake_server.refuse = 2
    make_client(blank_page, fake_server.url(), connect=False)
    socket_id = within(blank_page, "() => window.c.connect()")
    assert socket_id == "fake-1"
    attempts = events(blank_page, "reconnecting")
    assert [(e["attempt"], e["code"]) for e in attempts] == [(1, 1006), (2, 1006)]
    assert fake_server.refused == 2
    assert events(blank_page, "close") == []  # no connection was open until now
    assert events(blank_page, "reconnected") == []  # the first connection, after retries


def test_gives_up_after_max_attempts(blank_page: Page, fake_server: FakeServer) -> None:
    """With maxReconnectAttempts the client closes after that many failed retries; connect() rejects."""
    fake_server.refuse = 100
    make_client(blank_page, fake_server.url(), connect=False, maxReconnectAttempts=2)
    outcome = within(blank_page, "() => window.c.connect().then(id => id, e => `${e.name} ${e.reason}`)")
    assert outcome == "NotConnectedError closed"
    assert len(events(blank_page, "reconnecting")) == 2
    (close,) = events(blank_page, "close")
    assert (close["code"], close["willReconnect"]) == (1006, False)


def test_pending_calls_fail_and_queued_calls_wait(blank_page: Page, fake_server: FakeServer) -> None:
    """A drop rejects calls in flight (ConnectionLostError); later calls go out after reconnecting."""
    make_client(blank_page, fake_server.url())
    first = fake_server.next_peer()
    start_call(blank_page, "inflight", "slow")
    first.recv()
    fake_server.refuse = 1000  # keep the client reconnecting until the test lets it in
    first.close(1011, "crash")
    lost = settled(blank_page, "inflight")["error"]
    assert (lost["name"], lost["closeCode"]) == ("ConnectionLostError", 1011)

    wait_state(blank_page, "reconnecting")
    start_call(blank_page, "queued", "later")
    blank_page.evaluate("window.c.notify('note', 'queued')")
    assert blank_page.evaluate("window.c.queued") == 2
    fake_server.refuse = 0
    second = fake_server.next_peer()
    call = second.recv()
    assert (call["method"], second.recv()["method"]) == ("later", "note")
    second.send({"jsonrpc": "2.0", "result": "sent after reconnecting", "id": call["id"]})
    assert settled(blank_page, "queued") == {"result": "sent after reconnecting"}


def test_queue_bound_fail_fast_and_close(blank_page: Page, fake_server: FakeServer) -> None:
    """The queue is bounded; failFast rejects at once; close() rejects what is queued."""
    make_client(blank_page, fake_server.url(), name="q", connect=False, queueSize=2)
    start_call(blank_page, "one", "one", client="q")
    start_call(blank_page, "two", "two", client="q")
    start_call(blank_page, "three", "three", client="q")
    assert settled(blank_page, "three")["error"] == {
        "name": "NotConnectedError",
        "message": "not connected: three was not sent because the queue is full",
        "reason": "queue-full",
    }
    assert blank_page.evaluate(
        "(() => { try { window.q.notify('n'); } catch (e) { return e.reason; } })()"
    ) == ("queue-full")
    blank_page.evaluate("window.q.close()")
    assert settled(blank_page, "one")["error"]["reason"] == "closed"
    assert settled(blank_page, "two")["error"]["reason"] == "closed"

    make_client(blank_page, fake_server.url(), name="f", connect=False, failFast=True)
    start_call(blank_page, "fast", "fast", client="f")
    assert settled(blank_page, "fast")["error"]["reason"] == "fail-fast"


def test_calls_can_fail_fast_while_notes_still_queue(blank_page: Page, fake_server: FakeServer) -> None:
    """queueCalls: false rejects calls at once but queues notifications; ``queue`` overrides per call."""
    make_client(blank_page, fake_server.url(), name="n", connect=False, queueCalls=False)
    start_call(blank_page, "refused", "refused", client="n")
    assert settled(blank_page, "refused")["error"] == {
        "name": "NotConnectedError",
        "message": "not connected: refused was not sent because calls are not queued",
        "reason": "not-queued",
    }
    blank_page.evaluate("window.n.notify('waits', 1)")
    start_call(blank_page, "kept", "kept", client="n", queue=True)
    assert blank_page.evaluate("window.n.queued") == 2
    blank_page.evaluate("window.n.connect()")
    peer = fake_server.next_peer()
    assert [peer.recv()["method"], peer.recv()["method"]] == ["waits", "kept"]

    make_client(blank_page, fake_server.url(), name="d", connect=False, queueCalls=None, failFast=None)
    assert blank_page.evaluate("[window.d.options.queueCalls, window.d.options.failFast]") == [True, False]
    start_call(blank_page, "one-off", "one-off", client="d", queue=False)
    assert settled(blank_page, "one-off")["error"]["reason"] == "not-queued"
    assert blank_page.evaluate("window.d.queued") == 0


def test_queued_call_times_out_in_the_queue(blank_page: Page, fake_server: FakeServer) -> None:
    """A queued call's timeout runs while it waits; it leaves the queue and is never sent."""
    make_client(blank_page, fake_server.url(), connect=False)
    start_call(blank_page, "expires", "expires", timeout=50)
    assert settled(blank_page, "expires")["error"]["name"] == "InvokeTimeoutError"
    assert blank_page.evaluate("window.c.queued") == 0
    start_call(blank_page, "kept", "kept")
    blank_page.evaluate("window.c.connect()")
    peer = fake_server.next_peer()
    assert peer.recv()["method"] == "kept"


def test_close_is_final_and_connect_starts_again(blank_page: Page, fake_server: FakeServer) -> None:
    """close() sends 1000 and does not reconnect; connect() afterwards opens a fresh session."""
    make_client(blank_page, fake_server.url())
    first = fake_server.next_peer()
    blank_page.wait_for_function("window.c.id === 'fake-1'")
    blank_page.evaluate("window.c.close(1000, 'bye')")
    first.wait_closed()
    assert first.connection.close_code == 1000
    assert blank_page.evaluate("window.c.state") == "closed"
    assert events(blank_page, "reconnecting") == []
    start_call(blank_page, "after", "after")
    assert settled(blank_page, "after")["error"]["reason"] == "closed"

    assert within(blank_page, "() => window.c.connect()") == "fake-2"
    assert events(blank_page, "reconnected") == []
    assert [e["reconnect"] for e in events(blank_page, "connected")] == [False, False]


def test_heartbeat_drops_a_silent_connection(blank_page: Page, fake_server: FakeServer) -> None:
    """Unanswered rpc.ping calls make the client drop the socket (1006 "heartbeat timeout") and reconnect."""
    make_client(blank_page, fake_server.url(), heartbeatInterval=100, heartbeatTimeout=300)
    first = fake_server.next_peer()
    ping = first.recv()
    assert ping == {"jsonrpc": "2.0", "method": "rpc.ping", "id": ping["id"]}
    first.send({"jsonrpc": "2.0", "result": "pong", "id": ping["id"]})
    first.recv()  # the next ping, never answered
    fake_server.next_peer()
    (close,) = wait_events(blank_page, "close", 1)
    assert (close["code"], close["reason"], close["willReconnect"]) == (1006, "heartbeat timeout", True)
    wait_events(blank_page, "reconnected", 1)


def test_jitter_spreads_reconnect_delays(blank_page: Page, fake_server: FakeServer) -> None:
    """Retry delays are random below the exponential curve and capped by reconnectMaxDelay."""
    fake_server.refuse = 1000
    make_client(blank_page, fake_server.url(), reconnectDelay=100, reconnectMaxDelay=400, reconnectFactor=2)
    attempts = wait_events(blank_page, "reconnecting", 5)
    delays = [e["delay"] for e in attempts]
    bases = [100, 200, 400, 400, 400]
    assert all(base / 2 <= delay <= base for delay, base in zip(delays, bases, strict=False))
    assert len(set(delays)) > 1
    blank_page.evaluate("window.c.close()")


def test_options_are_checked(blank_page: Page) -> None:
    """A misspelt option fails loudly at construction instead of being ignored."""
    error = blank_page.evaluate(
        "(() => { try { new wsmanager.Client('/x', {heartbeat: 5}); } catch (e) { return e.message; } })()"
    )
    assert error == 'unknown option "heartbeat"'


def test_type_declarations_cover_every_option_and_public_member(blank_page: Page) -> None:
    """wsmanager.d.ts declares each key of Client.defaults and each public Client member."""
    declared = (CLIENT_JS.parent / "wsmanager.d.ts").read_text()
    options = blank_page.evaluate("Object.keys(wsmanager.Client.defaults)")
    members = blank_page.evaluate(
        """Object.getOwnPropertyNames(wsmanager.Client.prototype)
            .filter((name) => name !== "constructor" && !name.startsWith("_"))"""
    )
    assert "queueCalls" in options and "invokeWithOptions" in members
    assert [o for o in options if not re.search(rf"\b{o}\?: ", declared)] == []
    assert [m for m in members if not re.search(rf"\b(get |readonly )?{m}\b[<(:]", declared)] == []
