"""MessagePack against every real server: the subprotocol negotiated at the handshake,
JSON and MessagePack clients in one room, bytes both ways, hostile binary input."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import msgpack
import pytest
import websockets

from tests import redis_support
from tests.e2e.client import Peer, chat_url, cluster_env, running
from tests.e2e.test_recovery_e2e import parked_count, until_parked
from tests.servers import (
    ServerProcess,
    every_implementation,  # noqa: F401  (server_kind: also uvicorn's other implementations)
    server_process,
)
from wsmanager_client import NotConnected, connect
from wsmanager_client import encodings as wire
from wsmanager_client.protocol import BINARY_NOT_SUPPORTED, INVALID_REQUEST, PARSE_ERROR

pytestmark = pytest.mark.e2e

WAIT = 20.0  # a bound on each wait, so that a failure shows instead of hanging; never a threshold
MSGPACK = wire.SUBPROTOCOLS["msgpack"]
redis_url = redis_support.redis_url


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def call(method: str, params: Any, msg_id: Any) -> bytes:
    return wire.pack({"jsonrpc": "2.0", "method": method, "params": params, "id": msg_id})


async def binary_peer(url: str) -> Any:
    """A raw socket that offered MessagePack, past its ``rpc.connected``."""
    ws = await websockets.connect(url, subprotocols=[websockets.Subprotocol(MSGPACK)])
    assert ws.subprotocol == MSGPACK
    hello = await asyncio.wait_for(ws.recv(), WAIT)
    assert isinstance(hello, bytes)
    assert wire.loads(hello)["method"] == "rpc.connected"
    return ws


async def answer(ws: Any) -> Any:
    frame = await asyncio.wait_for(ws.recv(), WAIT)
    assert isinstance(frame, bytes), frame
    return wire.loads(frame)


async def test_json_and_msgpack_clients_in_one_room_see_the_same_messages(demo_server: ServerProcess) -> None:
    seen: dict[str, asyncio.Queue[dict[str, Any]]] = {"ann": asyncio.Queue(), "bob": asyncio.Queue()}

    def handlers(name: str) -> dict[str, Any]:
        return {"message": lambda **params: seen[name].put_nowait(params)}

    url = chat_url(demo_server, "mixed")
    async with (
        connect(f"{url}?name=ann", handlers=handlers("ann")) as ann,
        connect(f"{url}?name=bob", handlers=handlers("bob"), encoding="msgpack") as bob,
    ):
        assert sorted(m["name"] for m in await bob.invoke("who")) == ["ann", "bob"]
        await ann.invoke("send", "from json")
        await bob.invoke("send", "from msgpack ✓")
        got = {name: [await asyncio.wait_for(q.get(), WAIT) for _ in range(2)] for name, q in seen.items()}
    assert got["ann"] == got["bob"]
    assert [m["text"] for m in got["ann"]] == ["from json", "from msgpack ✓"]


async def test_bytes_travel_as_bytes_and_json_stays_the_default(model_server: ServerProcess) -> None:
    url = f"{model_server.ws_url}/ws/model/"
    blob = bytes(range(256)) * 40
    mirrored: list[Any] = []

    def mirror(value: Any) -> Any:
        mirrored.append(value)
        return value

    async with connect(url, encoding="msgpack", handlers={"mirror": mirror}) as client:
        assert await client.invoke("echo", blob) == blob
        # The server calls the client with bytes, and the client's handler answers bytes.
        assert await client.invoke("ask_mirror", b"\x00\xfe") == b"\x00\xfe"
        assert mirrored == [b"\x00\xfe"]
        assert await client.invoke("echo", {"nested": [b"\x00", "text", 1.5, None]}) == {
            "nested": [b"\x00", "text", 1.5, None]
        }
    async with websockets.connect(url) as plain:  # no subprotocol offered: JSON text, as ever
        assert plain.subprotocol is None
        assert isinstance(await asyncio.wait_for(plain.recv(), WAIT), str)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x93\x01", PARSE_ERROR),
        (b"\xc1", PARSE_ERROR),
        (b"\x91" * 5000 + b"\xc0", PARSE_ERROR),
        (call("echo", nested(70), 1), INVALID_REQUEST),
        (wire.pack([{"jsonrpc": "2.0", "method": "count", "id": i} for i in range(101)]), INVALID_REQUEST),
        ('{"jsonrpc":"2.0","method":"count","id":1}', BINARY_NOT_SUPPORTED),
        # {"params": [[[...]]]}, 1,000 array32 headers each declaring 16,000 members.
        (b"\x81\xa6params" + (b"\xdd" + (16_000).to_bytes(4, "big")) * 1000, PARSE_ERROR),
        (msgpack.packb({"jsonrpc": "2.0", "method": "echo", "params": {b"k": 1}, "id": 1}), PARSE_ERROR),
        (msgpack.packb({"jsonrpc": "2.0", "method": "echo", "params": [float("nan")], "id": 1}), PARSE_ERROR),
    ],
    ids=[
        "truncated",
        "invalid",
        "deep-stack",
        "deep",
        "batch",
        "text-frame",
        "long-headers",
        "bin-key",
        "nan",
    ],
)
async def test_hostile_input_is_answered_and_the_socket_stays_usable(
    model_server: ServerProcess, data: bytes | str, code: int
) -> None:
    ws = await binary_peer(f"{model_server.ws_url}/ws/model/")
    try:
        await ws.send(data)
        reply = await answer(ws)
        assert reply["error"]["code"] == code and reply["id"] is None
        await ws.send(call("echo", [b"ok"], 7))
        assert await answer(ws) == {"jsonrpc": "2.0", "result": b"ok", "id": 7}
    finally:
        await ws.close()


async def test_an_oversized_binary_frame_closes_the_socket_1009(model_server: ServerProcess) -> None:
    ws = await binary_peer(f"{model_server.ws_url}/ws/model/")
    await ws.send(call("echo", [b"x" * (64 * 1024)], 1))  # nothing after it: the close frame must arrive
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), WAIT)
    assert ws.close_code == 1009


async def test_a_msgpack_client_gives_up_on_a_handler_that_takes_json_only(
    model_server: ServerProcess,
) -> None:
    url = f"{model_server.ws_url}/ws/model-json/"
    async with websockets.connect(url, subprotocols=[websockets.Subprotocol(MSGPACK)]) as ws:
        assert ws.subprotocol is None  # not selected: the socket speaks JSON
        assert isinstance(await asyncio.wait_for(ws.recv(), WAIT), str)
    with pytest.raises(NotConnected) as caught:
        async with connect(url, encoding="msgpack"):
            pass
    assert "MessagePack" in str(caught.value)


@pytest.fixture(scope="module")
def recovering(redis_url: str, server_kind: str) -> Iterator[ServerProcess]:
    env = cluster_env(redis_url, WSMANAGER_RECOVERY_WINDOW="60", WSMANAGER_HEARTBEAT="0.5")
    with running([server_process(server_kind, env=env)]) as (server,):
        yield server


@pytest.mark.redis
async def test_a_resumed_msgpack_socket_gets_its_replay_as_binary_frames(recovering: ServerProcess) -> None:
    """The missed messages were journaled as JSON; a MessagePack socket resuming gets every one
    of them, and everything after, as MessagePack in binary frames, never a text frame."""
    url = chat_url(recovering, "mp-replay")
    a = await websockets.connect(f"{url}?name=ann", subprotocols=[websockets.Subprotocol(MSGPACK)])
    hello = await answer(a)
    token, offset = hello["params"]["recovery"]["token"], hello["params"]["recovery"]["offset"]
    b = await Peer.open(f"{url}?name=bob")
    parked = await parked_count(recovering)
    a.transport.abort()
    await until_parked(recovering, parked + 1)
    for i in range(3):
        assert await b.call("send", f"gap {i}") == {"delivered": 2}

    back = await websockets.connect(
        f"{url}?{urlencode({'wsm_resume': token, 'wsm_offset': offset})}",
        subprotocols=[websockets.Subprotocol(MSGPACK)],
    )
    try:
        welcome = await answer(back)  # binary, or answer() fails
        assert welcome["method"] == "rpc.connected" and welcome["params"]["recovered"] is True
        texts: list[str] = []
        while len(texts) < 3:
            message = await answer(back)
            if message.get("method") == "message":
                texts.append(message["params"]["text"])
        assert texts == ["gap 0", "gap 1", "gap 2"]
        await b.call("send", "live")
        while (message := await answer(back)).get("method") != "message":
            pass
        assert message["params"]["text"] == "live"
    finally:
        await back.close()
        await b.close()
