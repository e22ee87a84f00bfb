"""Property tests of the RPC dispatcher, end to end through one in-process socket.

For any frame a client can send, the handler answers with valid JSON-RPC
responses (one per call that is not a notification, as many as the decoder
says) or with nothing, never closes the socket, and never lets an exception
escape its task. One socket serves every example, so damage done by one frame
would show in the next ones too.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsmanager import RpcError, RpcHandler, route, rpc, websocket_app
from wsmanager_client import protocol
from wsmanager_client.protocol import Invalid, Request


def never(handler: RpcHandler) -> bool:
    return False


class DispatchHandler(RpcHandler):
    """Methods of every kind: async, sync, failing, refusing, guarded."""

    rate_limit = None
    max_batch_size = 10

    @rpc
    async def echo(self, value: Any = None) -> Any:
        return value

    @rpc
    async def add(self, a: int, b: int) -> int:
        return a + b

    @rpc
    def shout(self, text: str, times: int = 1) -> str:
        return text.upper() * max(0, min(times, 3))

    @rpc
    async def fail(self) -> None:
        raise ValueError("a bug in a method")

    @rpc
    async def refuse(self, why: Any = None) -> None:
        raise RpcError(4000, "Refused", why)

    @rpc(permission=never)
    async def guarded(self) -> str:
        return "never"


application = websocket_app([route("ws/dispatch/", DispatchHandler)], auth=False)

METHODS = [
    "echo",
    "add",
    "shout",
    "fail",
    "refuse",
    "guarded",
    "rpc.ping",
    "nope",
    "rpc.x",
    "",
    "_x",
    "on_open",
]


class Session:
    """One open socket on its own event loop, reused by every example of a test."""

    def __init__(self, runner: asyncio.Runner) -> None:
        self.runner = runner
        self.comm = WebsocketCommunicator(application, "/ws/dispatch/")
        self.sentinels = itertools.count()

    async def _open(self) -> None:
        assert (await self.comm.connect(timeout=3))[0]
        hello = await self.comm.receive_json_from(timeout=3)
        assert hello["method"] == "rpc.connected"

    async def _exchange(self, data: str | bytes) -> list[Any]:
        key = "text" if isinstance(data, str) else "bytes"
        await self.comm.send_input({"type": "websocket.receive", key: data})
        # Calls run in arrival order, so the answer to this echo comes after
        # everything the frame caused (rpc.ping would skip the queue).
        sentinel = f"sentinel {next(self.sentinels)} \x00"
        marker = {"jsonrpc": "2.0", "result": sentinel, "id": sentinel}
        await self.comm.send_input(
            {"type": "websocket.receive", "text": json.dumps(call("echo", [sentinel], sentinel))}
        )
        outputs = []
        while True:
            message = await self.comm.receive_output(timeout=5)
            assert message["type"] == "websocket.send", f"the socket closed: {message}"
            assert message.get("text") is not None, message
            answer = json.loads(message["text"])
            if answer == marker:
                break
            outputs.append(answer)
        assert not self.comm.future.done(), "the handler's task ended"
        return outputs

    def exchange(self, data: str | bytes) -> list[Any]:
        """Send ``data`` as one frame; every frame the server sent because of it."""
        return self.runner.run(self._exchange(data))

    async def _close(self) -> None:
        await self.comm.send_input({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(asyncio.shield(self.comm.future), 3)
        assert self.comm.future.exception() is None


@pytest.fixture
def session() -> Iterator[Session]:
    """An open socket on a private event loop (hypothesis drives the test synchronously)."""
    with asyncio.Runner() as runner:
        live = Session(runner)
        runner.run(live._open())
        yield live
        runner.run(live._close())


def call(method: str, params: Any, msg_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": msg_id}


# -- what a valid answer looks like ------------------------------------------------------------


def valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int)


def check_response(obj: Any) -> None:
    """``obj`` is one JSON-RPC 2.0 response object."""
    assert isinstance(obj, dict), obj
    assert obj.get("jsonrpc") == "2.0", obj
    assert "id" in obj and valid_id(obj["id"]), obj
    assert set(obj) in ({"jsonrpc", "id", "result"}, {"jsonrpc", "id", "error"}), obj
    if "error" in obj:
        err = obj["error"]
        assert isinstance(err, dict) and set(err) <= {"code", "message", "data"}, obj
        assert isinstance(err.get("code"), int) and not isinstance(err["code"], bool), obj
        assert isinstance(err.get("message"), str) and err["message"], obj


def expected_ids(data: str | bytes) -> list[Any] | None:
    """The ids the answer must carry, in order (a list: a batch answer; None: one response)."""
    if isinstance(data, bytes):
        return None
    decoded = protocol.decode(data)
    if decoded.batch and len(decoded.items) > DispatchHandler.max_batch_size:
        return None
    return [
        item.id
        for item in decoded.items
        if isinstance(item, Invalid) or (isinstance(item, Request) and not item.notification)
    ]


def check_exchange(data: str | bytes, outputs: list[Any]) -> None:
    """The frame got exactly the answers the decoder calls for, all valid."""
    if isinstance(data, bytes):
        assert len(outputs) == 1, outputs
        check_response(outputs[0])
        assert outputs[0]["error"]["code"] == protocol.BINARY_NOT_SUPPORTED
        return
    decoded = protocol.decode(data)
    ids = expected_ids(data)
    if ids is None:  # a batch over max_batch_size: one error for all of it
        assert len(outputs) == 1 and isinstance(outputs[0], dict), outputs
        check_response(outputs[0])
        assert outputs[0]["error"]["code"] == protocol.INVALID_REQUEST
        return
    if not ids:  # notifications and responses only
        assert outputs == [], (data, outputs)
        return
    assert len(outputs) == 1, (data, outputs)
    (answer,) = outputs
    if decoded.batch:
        assert isinstance(answer, list) and len(answer) == len(ids), (data, answer)
        for obj in answer:
            check_response(obj)
        assert [obj["id"] for obj in answer] == ids
    else:
        check_response(answer)
        assert answer["id"] == ids[0]


# -- strategies ----------------------------------------------------------------------------------

any_text = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=60)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=20)
)
json_values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)
ids = (
    st.none() | st.integers() | st.text(max_size=8) | st.floats(allow_nan=False) | st.booleans() | json_values
)
params = (
    st.lists(json_values, max_size=3)
    | st.dictionaries(
        st.sampled_from(["value", "a", "b", "text", "times", "why", "x"]), json_values, max_size=3
    )
    | json_values
)
near_miss = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "2.0", "2.0", "1.0", "2", None, 2.0]),
        "method": st.sampled_from(METHODS) | json_values,
        "params": params,
        "id": ids,
        "result": json_values,
        "error": st.fixed_dictionaries(
            {"code": st.integers() | json_values, "message": st.text(max_size=5) | json_values},
            optional={"data": json_values},
        )
        | json_values,
    },
)
calls = st.builds(
    call,
    st.sampled_from(METHODS),
    st.lists(st.integers(-5, 5) | st.text(max_size=5), max_size=3)
    | st.fixed_dictionaries({}, optional={"a": st.integers(), "b": st.integers(), "value": json_values}),
    st.integers() | st.text(max_size=5) | st.none(),
)
documents = (
    near_miss
    | calls
    | st.lists(near_miss | calls | json_values, max_size=4)
    | st.lists(near_miss | calls, min_size=9, max_size=12)  # around max_batch_size
    | json_values
)


def json_text(value: Any) -> str:
    return json.dumps(value)  # NaN and Infinity included: the server must refuse those


@st.composite
def mangled(draw: st.DrawFn) -> str:
    """Valid request text with a cut, an insertion or a deletion somewhere."""
    text = json_text(draw(calls | st.lists(calls, min_size=1, max_size=3)))
    at = draw(st.integers(0, len(text)))
    how = draw(st.sampled_from(["cut", "insert", "delete"]))
    if how == "cut":
        return text[:at]
    if how == "insert":
        return text[:at] + draw(st.sampled_from([*'{}[]",:\\ 0e-.', "\ud800", "\x00", "NaN"])) + text[at:]
    return text[:at] + text[at + 1 :]


PROPERTY = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(data=any_text)
def test_any_text_frame_gets_valid_answers_or_nothing(session: Session, data: str) -> None:
    """Arbitrary text (lone surrogates included) is answered validly; the socket stays open."""
    check_exchange(data, session.exchange(data))


@PROPERTY
@given(value=documents)
def test_any_json_value_gets_valid_answers_or_nothing(session: Session, value: Any) -> None:
    """Any JSON value, request-shaped or not, single or batched, gets exactly the answers it calls for."""
    data = json_text(value)
    check_exchange(data, session.exchange(data))


@PROPERTY
@given(data=mangled() | st.binary(max_size=64))
def test_near_miss_frames_get_valid_answers_or_nothing(session: Session, data: str | bytes) -> None:
    """Requests with a character cut, added or removed, and binary frames, never hurt the socket."""
    check_exchange(data, session.exchange(data))
