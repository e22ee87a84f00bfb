"""The browser client in MessagePack mode (``encoding: "msgpack"``) against a real daphne:
the subprotocol, a room shared with a JSON client, Uint8Array values as bytes, a batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import msgpack
import pytest

from tests.servers import DaphneProcess
from wsmanager_client import encodings as wire

from .fake_server import FakeServer

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def model_server() -> Iterator[DaphneProcess]:
    """The e2e RPC app (its ``echo`` returns bytes as it gets them)."""
    server = DaphneProcess(app="tests.e2e.rpc_app:application", env={"DEMO_DB": ":memory:"}).start()
    yield server
    server.stop()


@pytest.fixture
def page(new_page: Callable[[], Page], demo_server: DaphneProcess) -> Page:
    page = new_page()
    page.goto(f"{demo_server.http_url}/")
    return page


def test_json_and_msgpack_clients_in_one_room_see_the_same_messages(page: Page) -> None:
    result: dict[str, Any] = page.evaluate(
        """async () => {
            const seen = {json: [], msgpack: []};
            const make = (encoding) => {
                const client = new wsmanager.Client(`/ws/chat/mp-room/?name=${encoding}`, {encoding});
                client.on("message", (m) => seen[encoding].push({name: m.name, text: m.text}));
                return client;
            };
            const json = make("json"), packed = make("msgpack");
            await json.connect();
            await packed.connect();
            await json.invoke("send", "from json");
            await packed.invoke("send", "from msgpack ✓");
            const who = await packed.invoke("who");
            while (seen.json.length < 2 || seen.msgpack.length < 2) {
                await new Promise((r) => setTimeout(r, 10));
            }
            const protocol = packed._ws.protocol;
            json.close();
            packed.close();
            return {seen, protocol, who: who.map((m) => m.name).sort()};
        }"""
    )
    assert result["protocol"] == "wsmanager.v1.msgpack"
    assert result["who"] == ["json", "msgpack"]
    assert result["seen"]["json"] == result["seen"]["msgpack"]
    assert [m["text"] for m in result["seen"]["json"]] == ["from json", "from msgpack ✓"]


def test_uint8array_values_travel_as_bytes(page: Page, model_server: DaphneProcess) -> None:
    result: dict[str, Any] = page.evaluate(
        """async (url) => {
            const client = new wsmanager.Client(url, {encoding: "msgpack"});
            await client.connect();
            const blob = new Uint8Array(5000).map((_, i) => i % 256);
            const back = await client.invoke("echo", blob);
            const nested = await client.invoke("echo", {a: [new Uint8Array([1, 2]), "t", 1.5, -7, null]});
            client.close();
            return {
                isBytes: back instanceof Uint8Array,
                same: back.length === blob.length && back.every((b, i) => b === blob[i]),
                nested: {bytes: Array.from(nested.a[0]), rest: nested.a.slice(1)},
            };
        }""",
        f"{model_server.ws_url}/ws/model-any-origin/",
    )
    assert result == {
        "isBytes": True,
        "same": True,
        "nested": {"bytes": [1, 2], "rest": ["t", 1.5, -7, None]},
    }


def test_a_server_without_msgpack_makes_the_client_close_1008(page: Page, demo_server: DaphneProcess) -> None:
    """A WebSocket that offers no subprotocol stands for a server (or handler) that picks none:
    the client gives up with 1008 instead of speaking MessagePack to a JSON peer."""
    result: dict[str, Any] = page.evaluate(
        """async () => {
            const client = new wsmanager.Client("/ws/chat/mp-none/?name=x", {
                encoding: "msgpack",
                WebSocket: class extends WebSocket {
                    constructor(url) { super(url); }  // offers nothing: no subprotocol chosen
                },
            });
            const closed = new Promise(
                (r) => client.addEventListener("close", (e) => r({code: e.code, reason: e.reason})));
            let error = null;
            try { await client.connect(); } catch (err) { error = err.name; }
            const detail = await closed;
            return {error, code: detail.code, reason: detail.reason, state: client.state};
        }"""
    )
    assert result["code"] == 1008
    assert result["reason"] == "the server does not accept MessagePack"
    assert result["state"] == "closed"
    assert result["error"] is not None


def test_msgpack_on_the_wire_with_a_scripted_server(blank_page: Page, fake_server: FakeServer) -> None:
    """The test plays the server: the frames the client sends are MessagePack, bytes are
    Uint8Array both ways, and a malformed binary frame is answered -32700."""
    page = blank_page
    page.evaluate(
        """(url) => {
            const options = {encoding: "msgpack", heartbeatInterval: 0, reconnect: false};
            window.c = new wsmanager.Client(url, options);
            window.c.on("mirror", (value) => value);
            window.c.connect();
        }""",
        fake_server.url(),
    )
    peer = fake_server.next_peer()
    assert peer.connection.subprotocol == "wsmanager.v1.msgpack"
    page.wait_for_function("() => window.c.state === 'open'")
    # The server calls the client with bytes; the answer is MessagePack with bytes.
    peer.send_bytes(wire.pack({"jsonrpc": "2.0", "method": "mirror", "params": [b"\x01\x02"], "id": 9}))
    answer = peer.recv_raw()
    assert isinstance(answer, bytes)
    assert wire.loads(answer) == {"jsonrpc": "2.0", "result": b"\x01\x02", "id": 9}
    # Malformed MessagePack: Parse error, id null, still MessagePack.
    peer.send_bytes(b"\x93\x01")
    error = wire.loads(peer.recv_raw())
    assert error["error"]["code"] == -32700 and error["id"] is None
    # A call of the client with a Uint8Array: packed as bin; the result comes back as Uint8Array.
    page.evaluate(
        """() => { window.put = window.c.invoke("put", new Uint8Array([7, 8, 9]))
                   .then((r) => ({isBytes: r instanceof Uint8Array, bytes: Array.from(r)})); }"""
    )
    request = peer.recv_raw()
    assert isinstance(request, bytes)
    call = wire.loads(request)
    assert (call["method"], call["params"]) == ("put", [b"\x07\x08\x09"])
    peer.send_bytes(wire.pack({"jsonrpc": "2.0", "result": b"\xff", "id": call["id"]}))
    assert page.evaluate("() => window.put") == {"isBytes": True, "bytes": [255]}
    page.evaluate("() => window.c.close()")


# Integers at every boundary of MessagePack's int forms, as JavaScript numbers, and what
# JSON.stringify would make of each (NaN and infinities: null).
BOUNDARIES = [
    0, 127, 128, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32, 1_796_621_505_506, 2**53 - 1,
    -1, -32, -33, -128, -129, -32_768, -32_769, -(2**31), -(2**31) - 1, -(2**53) + 1,
]  # fmt: skip


def test_the_js_packer_matches_python_msgpack_on_boundaries_and_sends_nil_for_non_finite(
    blank_page: Page, fake_server: FakeServer
) -> None:
    """Every safe integer packs as an integer in the smallest form, byte for byte what Python's
    msgpack makes; 2^53 and fractions as float64; NaN and infinities as nil."""
    page = blank_page
    page.evaluate(
        """(url) => {
            const options = {encoding: "msgpack", heartbeatInterval: 0, reconnect: false};
            window.c = new wsmanager.Client(url, options);
            window.c.connect();
        }""",
        fake_server.url(),
    )
    peer = fake_server.next_peer()
    page.wait_for_function("() => window.c.state === 'open'")
    page.evaluate(
        "(values) => window.c.notify('values', values, [2 ** 53, 1.5, NaN, Infinity, -Infinity])",
        BOUNDARIES,
    )
    sent = peer.recv_raw()
    assert isinstance(sent, bytes)
    floats = [2.0**53, 1.5, None, None, None]
    assert sent == msgpack.packb({"jsonrpc": "2.0", "method": "values", "params": [BOUNDARIES, floats]})
    params = wire.loads(sent)["params"]
    assert params[0] == BOUNDARIES and all(type(v) is int for v in params[0])
    assert params[1] == [2.0**53, 1.5, None, None, None] and type(params[1][0]) is float
    for value in BOUNDARIES:  # each one alone, byte for byte
        assert msgpack.packb(value) in sent
    # Bytes in an ArrayBuffer or a DataView (of a slice) travel as bin; other typed arrays refuse.
    refused = page.evaluate(
        """() => {
            const buffer = Uint8Array.from([9, 1, 2, 3, 9]).buffer;
            window.c.notify("bytes", new ArrayBuffer(2), new DataView(buffer, 1, 3));
            try { window.c.notify("bytes", new Int16Array([1])); return null; }
            catch (err) { return err instanceof TypeError; }
        }"""
    )
    assert refused is True
    assert wire.loads(peer.recv_raw())["params"] == [b"\x00\x00", b"\x01\x02\x03"]


def test_a_text_frame_on_a_msgpack_connection_drops_the_socket(
    blank_page: Page, fake_server: FakeServer
) -> None:
    """The server chose MessagePack and sends text: a protocol error; the client does not read
    it as a message but drops the socket (a browser cannot close 1002)."""
    page = blank_page
    page.evaluate(
        """(url) => {
            window.heard = [];
            window.closes = [];
            const options = {encoding: "msgpack", heartbeatInterval: 0, reconnect: false};
            window.c = new wsmanager.Client(url, options);
            window.c.on("said", (text) => window.heard.push(text));
            window.c.addEventListener("close", (e) => window.closes.push(e.reason));
            window.c.connect();
        }""",
        fake_server.url(),
    )
    peer = fake_server.next_peer()
    page.wait_for_function("() => window.c.state === 'open'")
    peer.send({"jsonrpc": "2.0", "method": "said", "params": ["as text"]})
    page.wait_for_function("() => window.c.state === 'closed'")
    assert page.evaluate("() => window.heard") == []
    assert page.evaluate("() => window.closes") == ["text frame on a MessagePack connection"]
