"""The encodings (``wsmanager_client.encodings``, shared, and ``wsmanager.connection._encodings``,
one socket's): MessagePack's unpacking with limits, the subprotocol negotiation, and an
``RpcHandler`` speaking MessagePack in-process, hostile input included."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from typing import Any

import msgpack
import pytest

from tests.handlers import CalcHandler
from wsmanager import ConfigurationError, RpcHandler, route, rpc, websocket_app
from wsmanager.connection._encodings import Codec, negotiate, to_binary
from wsmanager.connection._outbox import frame
from wsmanager.contract import openrpc_document
from wsmanager.testing import RpcCommunicator
from wsmanager_client import encodings as wire
from wsmanager_client import protocol
from wsmanager_client.protocol import (
    BINARY_NOT_SUPPORTED,
    INVALID_REQUEST,
    PARSE_ERROR,
    Invalid,
    Request,
    Response,
)

JSON_SUB, MSGPACK_SUB = wire.SUBPROTOCOLS["json"], wire.SUBPROTOCOLS["msgpack"]


def call(method: str, params: Any, msg_id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": msg_id}


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def error_of(decoded: protocol.Decoded) -> tuple[int, Any]:
    [item] = decoded.items
    assert isinstance(item, Invalid)
    return item.error.code, item.error.data


# -- unpacking -------------------------------------------------------------------------
def test_a_call_with_bytes_unpacks_to_the_request_json_would_give_with_bytes_kept() -> None:
    decoded = wire.unpack(wire.pack(call("put", [b"\x00\xff", "é", 1.5, None, True], "a")))
    assert decoded.items == [Request("put", (b"\x00\xff", "é", 1.5, None, True), "a")]
    assert not decoded.batch


def test_responses_and_batches_decode_as_in_json() -> None:
    data = wire.pack([{"jsonrpc": "2.0", "result": b"x", "id": 3}, call("add", {"a": 1})])
    decoded = wire.unpack(data, max_batch=10)
    assert decoded.batch
    assert decoded.items == [Response(3, result=b"x"), Request("add", {"a": 1}, 1)]


def test_a_batch_over_the_limit_is_refused_on_its_header() -> None:
    # The header says 11 members; none follows: refused before any member is read.
    assert error_of(wire.unpack(b"\x9b", max_batch=10)) == (INVALID_REQUEST, "at most 10 calls per batch")
    assert error_of(wire.unpack(b"\xdd\xff\xff\xff\xff", max_batch=10)) == (
        INVALID_REQUEST,
        "at most 10 calls per batch",
    )
    assert error_of(wire.unpack(wire.pack([]), max_batch=10)) == (INVALID_REQUEST, "empty batch")


def test_depth_is_limited_like_json_and_deep_input_never_recurses() -> None:
    assert wire.unpack(wire.pack(call("f", nested(protocol.MAX_DEPTH - 2)))).items[0] == Request(
        "f", (nested(protocol.MAX_DEPTH - 3),), 1
    )
    assert error_of(wire.unpack(wire.pack(call("f", nested(protocol.MAX_DEPTH))))) == (
        INVALID_REQUEST,
        "nesting too deep",
    )
    # Past the C unpacker's fixed stack (1,024): refused without building anything deeper.
    assert error_of(wire.unpack(b"\x91" * 100_000 + b"\xc0"))[0] == PARSE_ERROR
    # A deep map is counted as deep as arrays.
    deep_map: Any = 0
    for _ in range(70):
        deep_map = {"k": deep_map}
    assert error_of(wire.unpack(wire.pack(call("f", deep_map))))[0] == INVALID_REQUEST


def _nested_long_headers(size: int) -> bytes:
    # {"params": [[[...]]]}, each array32 header declaring `size` members: the frame that made
    # msgpack's unpacker reserve `size` slots per level, 1,000 levels deep.
    data = b"\x81\xa6params" + (b"\xdd" + size.to_bytes(4, "big")) * 1000
    return data + b"\xc0" * (size - len(data))


def _refuse_unpacking(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoUnpacking(msgpack.Unpacker):  # type: ignore[misc]  # headers may be read, values not
        def unpack(self) -> Any:
            raise AssertionError("the frame reached msgpack's unpacker")

    monkeypatch.setattr(msgpack, "Unpacker", NoUnpacking)
    monkeypatch.setattr(msgpack, "unpackb", NoUnpacking.unpack)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (_nested_long_headers(6_000), (PARSE_ERROR, "truncated MessagePack")),
        (b"\x91\xdd\xff\xff\xff\xff" + b"\xc0" * 100, (PARSE_ERROR, "truncated MessagePack")),
        # Two maps of 40 entries, nested: 160 members declared in a frame of 108 bytes.
        (b"\xde\x00\x28\xa1k\xde\x00\x28" + b"\xc0" * 100, (PARSE_ERROR, "truncated MessagePack")),
        (b"\x81\xa1k\xdc\x00", (PARSE_ERROR, "truncated MessagePack")),
        (b"\x81\xa1k\xc6\x00\x10\x00\x00xyz", (PARSE_ERROR, "truncated MessagePack")),
    ],
    ids=["nested-array32", "array32-in-array", "sum-over-frame", "truncated-header", "truncated-bin"],
)
def test_headers_that_promise_more_than_the_frame_are_refused_before_unpacking(
    data: bytes, error: tuple[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_unpacking(monkeypatch)
    assert error_of(wire.unpack(data, max_batch=10)) == error


def test_the_header_pass_holds_no_memory_per_item() -> None:
    """A frame of a million one-byte items is scanned without memory growing with them (the
    regular expression keeps no backtracking state per item); memory, not time, is read."""
    items = 1_000_000
    frame = b"\xdd" + items.to_bytes(4, "big") + b"\x01" * items
    tracemalloc.start()
    try:
        assert wire._promises_too_much(frame) is False
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak  # a backtracking scan held 122 MB here


def test_long_strings_and_bins_are_skipped_by_the_header_pass() -> None:
    # Payloads are not read as headers (a \xdd inside a string is text), and exact fits pass.
    message = call("f", ["\xdd" * 300, b"\xdf\xff\xff\xff\xff" * 20_000, list(range(40)), {"a": [1.5, -3]}])
    assert wire.unpack(wire.pack(message)).items == [
        Request("f", ("\xdd" * 300, b"\xdf\xff\xff\xff\xff" * 20_000, list(range(40)), {"a": [1.5, -3]}), 1)
    ]
    assert wire.unpack(wire.pack(call("f", [[]] * 50))).items[0] == Request("f", tuple([[]] * 50), 1)


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"", "truncated MessagePack"),
        (wire.pack(call("add", [1, 2]))[:-3], "truncated MessagePack"),
        (b"\xdb\xff\xff\xff\xffabc", "truncated MessagePack"),  # a str longer than the frame
        (b"\xc1", "not valid MessagePack"),  # a type byte MessagePack never uses
        (b"\xa2\xff\xfe", "not valid MessagePack"),  # a str that is not UTF-8
        (msgpack.packb({1: 2}), "not valid MessagePack"),  # a key that is not a string
        (wire.pack(call("f", [1])) + b"\xc0", "extra data after the message"),
        (b"\xd4\x05\x00", "extension type 5 is not accepted"),
        (msgpack.packb(msgpack.Timestamp(1)), "Timestamp is not accepted"),
        (msgpack.packb({"jsonrpc": "2.0", b"method": "f", "id": 1}), "map keys must be strings"),
        (msgpack.packb(call("f", [float("nan")])), "NaN and infinities are not accepted"),
        (msgpack.packb(call("f", {"x": float("-inf")})), "NaN and infinities are not accepted"),
    ],
    ids=[
        "empty",
        "truncated",
        "long-str",
        "c1",
        "not-utf8",
        "int-key",
        "extra",
        "ext",
        "timestamp",
        "bin-key",
        "nan",
        "inf",
    ],
)
def test_malformed_input_is_one_parse_error(data: bytes, detail: str) -> None:
    assert error_of(wire.unpack(data, max_batch=10)) == (PARSE_ERROR, detail)


def test_a_timestamp_inside_a_call_is_refused() -> None:
    data = msgpack.packb(call("f", [msgpack.Timestamp(1)]))
    assert error_of(wire.unpack(data))[0] == PARSE_ERROR


@pytest.mark.parametrize("n", [0, 1, 15, 16, 65_535, 65_536])
def test_join_batch_is_the_array_msgpack_would_pack(n: int) -> None:
    members = [None] * n
    assert wire.join_batch([wire.pack(m) for m in members]) == msgpack.packb(members)


def test_pack_refuses_what_msgpack_cannot_carry() -> None:
    with pytest.raises(protocol.EncodeError):
        wire.pack({"when": object()})
    with pytest.raises(protocol.EncodeError):
        wire.pack(2**70)
    for not_json in (float("nan"), [float("inf")], {"x": -float("inf")}, {(1, 2): 1}, {float("nan"): 1}):
        with pytest.raises(protocol.EncodeError):
            wire.pack(not_json)


def test_pack_writes_keys_as_json_does() -> None:
    value = {1: "x", 2.5: [{None: 1, False: 2}], "s": b"\x00"}
    assert wire.loads(wire.pack(value)) == {"1": "x", "2.5": [{"null": 1, "false": 2}], "s": b"\x00"}
    assert (
        wire.loads(wire.pack(value))["2.5"] == json.loads(protocol.dumps({2.5: [{None: 1, False: 2}]}))["2.5"]
    )
    same = {"a": [1, {"b": 2}]}
    assert wire.loads(wire.pack(same)) == same


def test_pack_writes_a_lone_surrogate_as_a_question_mark() -> None:
    assert wire.loads(wire.pack({"text": "hi \ud800"})) == {"text": "hi ?"}


# -- negotiation and the socket's codec --------------------------------------------------
def test_negotiation_follows_the_clients_order_among_what_the_handler_accepts() -> None:
    both = ("json", "msgpack")
    assert negotiate([], both) == ("json", None)
    assert negotiate(["chat", MSGPACK_SUB, JSON_SUB], both) == ("msgpack", MSGPACK_SUB)
    assert negotiate([JSON_SUB, MSGPACK_SUB], both) == ("json", JSON_SUB)
    assert negotiate([MSGPACK_SUB], ("json",)) == ("json", None)
    assert negotiate([MSGPACK_SUB, JSON_SUB], ("json",)) == ("json", JSON_SUB)
    assert negotiate(["wsmanager.v2.msgpack"], both) == ("json", None)


def test_a_broadcast_text_frame_is_translated_once_for_every_socket() -> None:
    message = frame(protocol.encode_notification("message", {"text": "hi"}))
    first = to_binary(message)
    assert wire.loads(first["bytes"]) == {"jsonrpc": "2.0", "method": "message", "params": {"text": "hi"}}
    assert to_binary(message) is first
    binary = frame(b"\x01")
    assert to_binary(binary) is binary


def test_codec_answers_the_wrong_frame_type_with_32001() -> None:
    assert error_of(Codec("msgpack").decode("{}", 10)) == (BINARY_NOT_SUPPORTED, None)
    assert error_of(Codec("json").decode(b"\x80", 10)) == (BINARY_NOT_SUPPORTED, None)
    assert Codec("msgpack").join(['{"a":1}', wire.pack(2)]) == msgpack.packb([{"a": 1}, 2])


def test_encodings_must_hold_json_and_known_names_only() -> None:
    for bad in (("msgpack",), ("json", "cbor"), "json"):
        with pytest.raises(ConfigurationError, match="encodings"):
            type("Bad", (RpcHandler,), {"encodings": bad})


def test_the_contract_lists_the_encodings_a_handler_accepts() -> None:
    assert openrpc_document(CalcHandler)["x-encodings"] == [
        {"name": "json", "subprotocol": JSON_SUB},
        {"name": "msgpack", "subprotocol": MSGPACK_SUB},
    ]
    only_json = type("OnlyJson", (RpcHandler,), {"encodings": ("json",), "__module__": __name__})
    assert openrpc_document(only_json)["x-encodings"] == [{"name": "json", "subprotocol": JSON_SUB}]


# -- an RpcHandler speaking MessagePack (in-process) -------------------------------------
class BytesHandler(RpcHandler):
    max_batch_size = 10
    max_message_size = 4096

    @rpc
    async def echo(self, value: Any) -> Any:
        return value

    @rpc
    async def ask(self, value: Any) -> Any:
        return await self.invoke("mirror", value, timeout=5)

    @rpc
    async def keyed(self) -> Any:
        return {1: "x", None: [2.5]}

    @rpc
    async def not_a_number(self) -> float:
        return float("nan")


class JsonOnlyHandler(BytesHandler):
    encodings = ("json",)


class OwnSubprotocolHandler(BytesHandler):
    """Accepts with a subprotocol of its own, whatever was negotiated."""

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept("chat.v2", headers)


app = websocket_app(
    [
        route("ws/bytes/", BytesHandler),
        route("ws/own-subprotocol/", OwnSubprotocolHandler),
        route("ws/json-only/", JsonOnlyHandler),
        # Burst 10, refilled at one token per 1,000 s: nothing refills during a test.
        route("ws/bytes/limited/", BytesHandler, rate_limit=(0.001, 10.0)),
    ],
    auth=False,
)


def client(path: str = "/ws/bytes/", encoding: str = "msgpack") -> RpcCommunicator:
    return RpcCommunicator(app, path, timeout=3.0, encoding=encoding)


async def test_msgpack_socket_calls_and_bytes_round_trip() -> None:
    async with client() as c:
        accepted_subprotocol = c.encoding
        assert accepted_subprotocol == "msgpack"
        assert await c.call("echo", b"\x00\x01\xff") == b"\x00\x01\xff"
        assert await c.call("echo", {"nested": [b"a", "b", 1.25]}) == {"nested": [b"a", "b", 1.25]}
        await c.send_to(bytes_data=wire.pack([call("echo", [1], 1), call("echo", [b"z"], 2)]))
        assert await c._receive_message(3) == [
            {"jsonrpc": "2.0", "result": 1, "id": 1},
            {"jsonrpc": "2.0", "result": b"z", "id": 2},
        ]


async def test_the_server_invokes_a_msgpack_client_with_bytes() -> None:
    async with client() as c:
        await c.send_to(bytes_data=wire.pack(call("ask", [b"\xfe"], "q")))
        invoke = await c._receive_message(3)
        assert invoke["method"] == "mirror" and invoke["params"] == [b"\xfe"]
        await c.send_to(
            bytes_data=wire.pack({"jsonrpc": "2.0", "result": invoke["params"][0], "id": invoke["id"]})
        )
        assert await c._receive_message(3) == {"jsonrpc": "2.0", "result": b"\xfe", "id": "q"}


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x93\x01", PARSE_ERROR),  # truncated
        (b"\xc1", PARSE_ERROR),  # invalid
        (b"\x91" * 3000 + b"\xc0", PARSE_ERROR),  # deeper than the unpacker's stack
        (wire.pack(call("echo", nested(100))), INVALID_REQUEST),  # over MAX_DEPTH
        (wire.pack([call("echo", [1], i) for i in range(11)]), INVALID_REQUEST),  # over max_batch_size
    ],
    ids=["truncated", "invalid", "stack", "deep", "batch"],
)
async def test_hostile_binary_input_is_answered_and_the_socket_stays_usable(data: bytes, code: int) -> None:
    async with client() as c:
        await c.send_to(bytes_data=data)
        reply = await c._receive_message(3)
        assert reply["error"]["code"] == code and reply["id"] is None
        assert await c.call("echo", "still here") == "still here"


async def test_a_text_frame_on_a_msgpack_socket_is_answered_32001() -> None:
    async with client() as c:
        await c.send_to(text_data='{"jsonrpc":"2.0","method":"echo","params":[1],"id":1}')
        reply = await c._receive_message(3)
        assert reply["error"] == {"code": BINARY_NOT_SUPPORTED, "message": "Text frames are not accepted"}
        assert await c.call("echo", 2) == 2


async def test_an_oversized_binary_frame_closes_1009_before_any_unpacking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with client() as c:

        def never(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("an oversized frame was unpacked")

        monkeypatch.setattr(wire, "unpack", never)
        await c.send_to(bytes_data=wire.pack(call("echo", [b"x" * 5000])))
        assert (await c.receive_output(3)) == {
            "type": "websocket.close",
            "code": 1009,
            "reason": "message too big",
        }


async def test_json_stays_the_default_and_a_handler_may_refuse_msgpack() -> None:
    async with client(encoding="json") as c:
        assert c.encoding == "json"
        assert await c.call("echo", [1]) == [1]
        await c.send_to(bytes_data=wire.pack(call("echo", [1])))
        assert (await c._receive_message(3))["error"]["code"] == BINARY_NOT_SUPPORTED
    async with client("/ws/json-only/") as c:
        assert c.encoding == "json"  # no subprotocol chosen: the client speaks JSON
        assert await c.call("echo", "plain") == "plain"


# -- the Python client's pieces -----------------------------------------------------------
def test_the_client_option_takes_json_or_msgpack_only() -> None:
    from wsmanager_client import Options

    assert Options().encoding == "json"
    assert Options(encoding="msgpack").encoding == "msgpack"
    with pytest.raises(ValueError, match="encoding"):
        Options(encoding="cbor")


async def test_a_msgpack_client_packs_its_calls_with_bytes_as_bytes() -> None:
    from wsmanager_client.calls import CallTable

    table = CallTable(queue_size=10, encoding="msgpack")
    call_ = table.new_call("put", [b"\x00\xff", "x"], None)
    assert isinstance(call_.text, bytes)
    assert wire.loads(call_.text) == {
        "jsonrpc": "2.0",
        "method": "put",
        "params": [b"\x00\xff", "x"],
        "id": 1,
    }
    note = table.new_note("tell", {"blob": b"z"})
    assert wire.loads(note.text) == {"jsonrpc": "2.0", "method": "tell", "params": {"blob": b"z"}}
    assert wire.loads(table.new_note("bare", None).text) == {"jsonrpc": "2.0", "method": "bare"}
    with pytest.raises(protocol.EncodeError):
        table.new_call("put", "not params", None)
    json_table = CallTable(queue_size=10)
    with pytest.raises(protocol.EncodeError):
        json_table.new_call("put", [b"\x00"], None)
    # The server reads what JSON would carry: keys as JSON writes them, no NaN.
    assert wire.loads(table.new_note("keyed", {"m": {7: "x"}}).text)["params"] == {"m": {"7": "x"}}
    for not_json in ([float("nan")], {"x": float("inf")}):
        with pytest.raises(protocol.EncodeError):
            table.new_call("put", not_json, None)
        with pytest.raises(protocol.EncodeError):
            json_table.new_call("put", not_json, None)


async def test_a_msgpack_clients_handlers_answer_bytes() -> None:
    from wsmanager_client.serving import Handlers

    handlers = Handlers(encoding="msgpack")
    handlers.on("mirror", lambda value: value)
    answer = await handlers.answer([Request("mirror", (b"\x01",), 5)], batch=False)
    assert isinstance(answer, bytes)
    assert wire.loads(answer) == {"jsonrpc": "2.0", "result": b"\x01", "id": 5}
    batch = await handlers.answer(
        [Request("mirror", (b"a",), 1), Request("mirror", (object(),), 2)], batch=True
    )
    assert isinstance(batch, bytes)
    first, second = wire.loads(batch)
    assert first["result"] == b"a" and second["error"]["code"] == protocol.INTERNAL_ERROR
    plain = Handlers()
    plain.on("mirror", lambda value: value)
    assert (
        await plain.answer([Request("mirror", (1,), 1)], batch=False) == '{"jsonrpc":"2.0","result":1,"id":1}'
    )


def test_offsets_of_a_msgpack_frame_are_read_as_from_json() -> None:
    from wsmanager_client.recovery import frame_offsets, packed_offsets

    text = protocol.with_offset(protocol.encode_notification("message", {"text": "offset"}), "17-3")
    assert packed_offsets(wire.transcode(text)) == frame_offsets(text) == ["17-3"]
    batch = wire.pack([{"jsonrpc": "2.0", "method": "a", "offset": "1-0"}, {"jsonrpc": "2.0", "method": "b"}])
    assert packed_offsets(batch) == ["1-0", None]
    assert packed_offsets(wire.pack({"jsonrpc": "2.0", "method": "a"})) == []


async def test_a_msgpack_batch_costs_one_token_per_member_and_is_refused_whole() -> None:
    async with client("/ws/bytes/limited/") as c:
        await c.send_to(bytes_data=wire.pack([call("echo", [i], i) for i in range(8)]))
        assert [r["result"] for r in await c._receive_message(3)] == list(range(8))
        await c.send_to(bytes_data=wire.pack([call("echo", [i], i) for i in range(8, 16)]))
        refused = await c._receive_message(3)
        assert [r["error"]["code"] for r in refused] == [protocol.RATE_LIMITED] * 8
        assert [r["id"] for r in refused] == list(range(8, 16))


def test_a_broadcast_with_no_msgpack_form_fails_once_is_counted_and_logged_throttled(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An int beyond 64 bits in a JSON broadcast: each MessagePack socket drops it (counted),
    the packing is tried once, the log line written once; a lone surrogate is no failure."""
    from wsmanager.connection import _writer
    from wsmanager.connection._outbox import Outbox
    from wsmanager.connection._writer import Writer
    from wsmanager.observe import _counters as counters
    from wsmanager.observe._logs import LogThrottle

    monkeypatch.setattr(_writer, "_untranslatable", LogThrottle(clock=lambda: 0.0))
    packed: list[str] = []
    real = wire.transcode
    monkeypatch.setattr(wire, "transcode", lambda text: packed.append(text) or real(text))

    async def close(code: int, reason: str) -> None:
        pass

    writers = [Writer(Outbox(None, 100), close, f"s{i}") for i in range(3)]
    for w in writers:
        w.translate = to_binary
    huge = frame(protocol.encode_notification("n", [2**64]))
    before = counters.stats().get("dropped_write_failed", 0)
    assert not any([w.push(huge) for w in writers])
    assert counters.stats().get("dropped_write_failed", 0) == before + 3
    assert len(packed) == 1
    assert len([r for r in caplog.records if "could not be translated" in r.getMessage()]) == 1
    surrogate = frame('{"jsonrpc":"2.0","method":"n","params":["hi \\ud800"]}')
    assert writers[0].translated(surrogate) is not None
    assert wire.loads(to_binary(surrogate)["bytes"])["params"] == ["hi ?"]


async def test_the_python_client_closes_1002_on_a_text_frame_over_msgpack() -> None:
    """A server that chose MessagePack and sends text breaks the protocol: the client closes
    the socket 1002 rather than reading the text as if nothing were wrong."""
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.frames import Close

    from wsmanager_client import Client

    closes: asyncio.Queue[Close | None] = asyncio.Queue()

    async def script(ws: ServerConnection) -> None:
        await ws.send(wire.pack({"jsonrpc": "2.0", "method": "rpc.connected", "params": {"id": "s1"}}))
        await ws.send('{"jsonrpc":"2.0","method":"said","params":["as text"]}')
        await ws.wait_closed()
        await closes.put(ws.protocol.close_rcvd)

    server = await serve(script, "127.0.0.1", 0, subprotocols=[MSGPACK_SUB])  # type: ignore[list-item]
    port = next(iter(server.sockets)).getsockname()[1]
    heard: list[Any] = []
    client = Client(f"ws://127.0.0.1:{port}/", encoding="msgpack", reconnect=False)
    client.on("said", lambda *args: heard.append(args))
    try:
        assert await client.connect() == "s1"
        received = await asyncio.wait_for(closes.get(), 5)
        assert received is not None and received.code == 1002
        assert heard == []
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


async def test_accepting_with_another_subprotocol_speaks_that_subprotocols_encoding() -> None:
    """The client offered MessagePack; the handler accepted with its own subprotocol: the
    client reads JSON (none of ours), so the socket writes JSON text and reads it."""
    c = RpcCommunicator(app, "/ws/own-subprotocol/", timeout=3.0, encoding="msgpack")
    connected, subprotocol = await c.connect()
    try:
        assert connected and subprotocol == "chat.v2" and c.encoding == "json"
        assert "id" in c.hello["params"]
        assert await c.call("echo", [1, "x"]) == [1, "x"]
    finally:
        await c.disconnect()


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_results_mean_the_same_in_both_encodings(encoding: str) -> None:
    """An int-keyed result is string-keyed on both (as json.dumps writes it); NaN is -32603 on both."""
    async with client(encoding=encoding) as c:
        assert c.encoding == encoding
        assert await c.call("keyed") == {"1": "x", "null": [2.5]}
        await c._send_message(call("not_a_number", [], 5))
        reply = await c._receive_message(3)
        assert reply["error"]["code"] == protocol.INTERNAL_ERROR and reply["id"] == 5
