"""``rpc.close``: a client that closes on purpose says so, and is released at once, for good.

In-process, on the in-memory registry and on Redis. The client's own close
arrives afterwards as hypercorn reports it (1006, the code of a lost
connection: pgjones/hypercorn#127), or not at all; either way the socket
was released when ``rpc.close`` arrived, never parked, and its resume token
is spent. The real servers are in tests/e2e/test_close_on_purpose.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import override_settings

from tests import redis_support
from wsmanager import Member, RpcHandler, WebSocketHandler, route, rpc, websocket_app
from wsmanager.connection._lifecycle import chosen_close_code
from wsmanager.jsonrpc._dispatch import CLOSE_ALONE
from wsmanager.observe import _counters as counters
from wsmanager.testing import RpcCommunicator
from wsmanager_client.protocol import INVALID_REQUEST

redis_url = redis_support.redis_url

#: (event, member key) of presence, and the codes ``on_disconnect`` got.
EVENTS: list[tuple[str, str]] = []
DISCONNECTS: list[int] = []


class RoomHandler(RpcHandler):
    """Recovery on, one room, one message a second; ``echo`` answers what it is given."""

    handler_name = "tests.close.room"
    recovery_window = 30.0
    rate_limit = (1.0, 1.0)
    rate_limit_strikes = 100

    async def on_connect(self) -> None:
        await self.join("room")

    async def on_disconnect(self, code: int) -> None:
        DISCONNECTS.append(code)

    @rpc
    async def echo(self, value: Any) -> Any:
        return value

    @classmethod
    async def on_presence(cls, group: str, event: str, member: Member) -> None:
        EVENTS.append((event, member.key))


class RawHandler(WebSocketHandler):
    """A raw handler with a protocol of its own: the text ``bye <code>`` closes on purpose."""

    handler_name = "tests.close.raw"
    abstract = False

    async def on_receive(self, message: str | bytes) -> None:
        if isinstance(message, str) and message.startswith("bye "):
            await self.close_on_request(int(message[4:]))

    async def on_disconnect(self, code: int) -> None:
        DISCONNECTS.append(code)


application = websocket_app(
    [
        route("ws/room/", RoomHandler),
        route("ws/free/", RoomHandler, rate_limit=None),
        route("ws/raw/", RawHandler),
    ],
    auth=False,
)
manager = RoomHandler.manager


class Client(RpcCommunicator):
    """Keeps its ``rpc.connected`` (and so its resume token)."""

    hello: dict[str, Any]

    async def connect(self, timeout: float | None = None) -> tuple[bool, Any]:
        accepted, detail = await super(RpcCommunicator, self).connect(timeout or self.timeout)
        if accepted:
            self.hello = await self.receive_json_from(timeout or self.timeout)
            self.id = self.hello["params"]["id"]
        return accepted, detail

    async def say(self, message: Any) -> None:
        await self.send_to(text_data=json.dumps(message))

    async def closed_with(self) -> int:
        """The server's close frame (frames before it are skipped): its code."""
        while True:
            output = await self.receive_output(self.timeout)
            if output["type"] == "websocket.close":
                return int(output.get("code", 1000))

    async def gone(self, code: int = 1006) -> None:
        """The connection ends as hypercorn reports a client's close: 1006."""
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(1.0)


async def opened(path: str = "/ws/room/") -> Client:
    client = Client(application, path)
    accepted, detail = await client.connect()
    assert accepted, detail
    return client


def bye(params: Any = None, **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": "rpc.close", **extra}
    if params is not None:
        message["params"] = params
    return message


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    if request.param == "memory":
        with override_settings(WSMANAGER={"HEARTBEAT_INTERVAL": 0.2}):
            yield "memory"
        return
    async with redis_support.redis_registry(request.getfixturevalue("redis_url")):
        yield "redis"


@pytest.fixture(autouse=True)
def _no_events() -> Iterator[None]:
    EVENTS.clear()
    DISCONNECTS.clear()
    yield
    EVENTS.clear()
    DISCONNECTS.clear()


async def test_rpc_close_releases_the_socket_before_the_server_closes_it(backend: str) -> None:
    client = await opened()
    await client.say(bye())
    assert await client.closed_with() == 1000  # the server's close frame crosses the client's
    assert not await manager.aexists(client.id)  # gone before the client's close frame arrived
    assert ("left", f"socket:{client.id}") in EVENTS
    await client.gone()
    assert DISCONNECTS == [1000]  # what the client asked, not the server's 1006


async def test_after_rpc_close_a_1006_neither_parks_the_socket_nor_keeps_its_token(backend: str) -> None:
    """hypercorn's 1006 for a client's clean close, or a connection lost after rpc.close."""
    client = await opened()
    await client.say(bye())
    await client.gone(1006)
    assert counters.stats().get("parked", 0) == 0
    query = urlencode({"wsm_resume": client.hello["params"]["recovery"]["token"], "wsm_offset": "0-0"})
    again = await opened(f"/ws/room/?{query}")
    assert again.id != client.id and again.hello["params"]["recovery_failed"] == "unknown"
    await again.disconnect()


async def test_without_rpc_close_a_1006_is_a_drop_and_parks(backend: str) -> None:
    """The contrast: what hypercorn's 1006 means when the client said nothing."""
    client = await opened()
    await client.gone(1006)
    assert await manager.aexists(client.id)
    assert counters.stats()["parked"] == 1
    assert ("left", f"socket:{client.id}") not in EVENTS
    await manager.adisconnect(client.id)


@pytest.mark.parametrize("params", [{"code": 4321}, [4321]])
async def test_the_code_rpc_close_gives_is_echoed_and_reaches_on_disconnect(params: Any) -> None:
    client = await opened()
    await client.say(bye(params))
    assert await client.closed_with() == 4321
    await client.gone(1006)
    assert DISCONNECTS == [4321]


@pytest.mark.parametrize(
    "params", [{"code": 1006}, {"code": 1011}, {"code": 999}, {"code": "4000"}, {"code": True}, {"x": 1}]
)
async def test_a_code_no_client_may_choose_counts_as_1000(params: Any) -> None:
    client = await opened()
    await client.say(bye(params))
    assert await client.closed_with() == 1000
    await client.gone(1006)
    assert DISCONNECTS == [1000]
    assert counters.stats().get("parked", 0) == 0


async def test_rpc_close_as_a_call_is_answered_null_before_the_close() -> None:
    client = await opened()
    await client.say(bye(id=7))
    assert await client.receive_json_from(client.timeout) == {"jsonrpc": "2.0", "result": None, "id": 7}
    assert await client.closed_with() == 1000
    await client.gone()


async def test_rpc_close_inside_a_batch_is_refused_and_the_socket_stays_open() -> None:
    client = await opened("/ws/free/")
    await client.say([bye(id="c"), {"jsonrpc": "2.0", "method": "echo", "params": [1], "id": "e"}])
    answers = await client.receive_json_from(client.timeout)
    assert answers == [
        {
            "jsonrpc": "2.0",
            "error": {"code": INVALID_REQUEST, "message": "Invalid Request", "data": CLOSE_ALONE},
            "id": "c",
        },
        {"jsonrpc": "2.0", "result": 1, "id": "e"},
    ]
    assert await manager.aexists(client.id)
    await client.disconnect()


async def test_frames_after_rpc_close_are_dropped_and_counted() -> None:
    client = await opened()
    await client.say(bye())
    await client.say({"jsonrpc": "2.0", "method": "echo", "params": [1], "id": 1})
    assert await client.closed_with() == 1000  # no answer before it, and none after
    assert await client.receive_nothing(0.1)
    assert counters.stats()["dropped_incoming"] >= 1
    await client.gone()


async def test_rpc_close_is_honoured_over_the_rate_limit() -> None:
    client = await opened()
    await client.say({"jsonrpc": "2.0", "method": "echo", "params": [1], "id": 1})  # the one token
    assert (await client.receive_json_from(client.timeout))["result"] == 1
    await client.say(bye())
    assert await client.closed_with() == 1000
    assert counters.stats()["rate_limited"] == 1
    assert not await manager.aexists(client.id)
    await client.gone()


async def test_a_raw_handler_closes_on_request_through_its_own_protocol() -> None:
    client = Client(application, "/ws/raw/")
    assert (await super(RpcCommunicator, client).connect(1.0))[0]
    await client.send_to(text_data="bye 4000")
    assert await client.closed_with() == 4000
    await client.gone(1006)
    assert DISCONNECTS == [4000]
    assert await RawHandler.manager.acount() == 0


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (1000, 1000),
        (3000, 3000),
        (4999, 4999),
        (None, 1000),
        (1001, 1000),
        (1006, 1000),
        (2999, 1000),
        (5000, 1000),
        (True, 1000),
        (4000.0, 1000),
        ("4000", 1000),
    ],
)
def test_a_chosen_close_code_is_1000_or_in_3000_to_4999(value: object, code: int) -> None:
    assert chosen_close_code(value) == code
