"""``wsmanager.node._relay``: a server-to-client call across processes, both halves.

The caller's :class:`Calls` and the serving node's :func:`serve` talk over a
real :class:`Link` on Channels' in-memory layer, each with its own channel,
as two processes' nodes would; the socket is a stand-in with the one method
``serve`` needs (``invoke_params``), so each outcome can be chosen.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer

from wsmanager.exceptions import (
    ConnectionClosed,
    DeliveryError,
    InvokeError,
    InvokeTimeout,
    RemoteError,
    SocketNotFound,
)
from wsmanager.node._link import Link
from wsmanager.node._relay import Calls, invoke_envelope, serve
from wsmanager.observe import Count, stats

CALLER, SERVER = "node.caller", "node.server"


class Socket:
    """A local socket whose client answers ``invoke_params`` with ``outcome``."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.calls: list[tuple[str, Any, float]] = []

    async def invoke_params(self, method: str, params: Any, *, timeout: float) -> Any:
        self.calls.append((method, params, timeout))
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class Pair:
    """Two nodes on one layer: the caller waits on its ``Calls``, the server serves ``sock``."""

    def __init__(self) -> None:
        self.layer = InMemoryChannelLayer()
        self.link = Link(self.layer)
        self.calls = Calls()
        self.sock: Socket | None = None
        self.served: list[dict[str, Any]] = []

    async def server_once(self) -> None:
        """The serving node reads one envelope and serves it on its socket."""
        envelope = await self.layer.receive(SERVER)
        self.served.append(envelope)
        await serve(self.sock, self.link, envelope)

    async def caller_once(self) -> None:
        """The calling node reads one reply and settles the call it names."""
        self.calls.settle(await self.layer.receive(CALLER))

    async def call(self, params: Any = (21,), timeout: float = 5.0) -> Any:
        """One full round trip: invoke ``double`` on socket ``s1`` from the caller."""
        envelope = invoke_envelope("chat", "s1", "double", params, timeout, CALLER)
        hops = asyncio.gather(self.server_once(), self.caller_once())
        try:
            return await self.calls.call(self.link, SERVER, envelope, timeout)
        finally:
            await hops


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    p = Pair()
    yield p
    assert p.calls.waiting == {}, "a call was left waiting"


async def test_a_result_comes_back_to_the_caller(pair: Pair) -> None:
    pair.sock = Socket({"doubled": 42})
    assert await pair.call((21,), timeout=3.0) == {"doubled": 42}
    assert pair.sock.calls == [("double", (21,), 3.0)]


async def test_named_params_travel_as_an_object(pair: Pair) -> None:
    pair.sock = Socket("ok")
    assert await pair.call({"value": 2, "factor": 3}) == "ok"
    assert pair.sock.calls[0][1] == {"value": 2, "factor": 3}
    assert (pair.served[0]["args"], pair.served[0]["kwargs"]) == ([], {"value": 2, "factor": 3})


async def test_each_call_has_its_own_id_and_a_reply_settles_only_its_own(pair: Pair) -> None:
    """Two calls at once: replies settle by call id, whatever their order."""
    pair.sock = Socket("unused")
    first = invoke_envelope("chat", "s1", "a", (), 5.0, CALLER)
    second = invoke_envelope("chat", "s1", "b", (), 5.0, CALLER)
    t1 = asyncio.ensure_future(pair.calls.call(pair.link, SERVER, first, 5.0))
    t2 = asyncio.ensure_future(pair.calls.call(pair.link, SERVER, second, 5.0))
    sent = [await pair.layer.receive(SERVER), await pair.layer.receive(SERVER)]
    assert sent[0]["call"] != sent[1]["call"]
    by_method = {e["method"]: e["call"] for e in sent}
    pair.calls.settle({"call": by_method["b"], "socket": "s1", "method": "b", "result": "B"})
    assert await t2 == "B"
    assert not t1.done()
    pair.calls.settle({"call": by_method["a"], "socket": "s1", "method": "a", "result": "A"})
    assert await t1 == "A"


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (RemoteError("s1", "double", -32000, "no", {"k": 1}), RemoteError),
        (InvokeTimeout("s1", "double", 5.0), InvokeTimeout),
        (ConnectionClosed("s1", 1001), ConnectionClosed),
        (SocketNotFound("s1", "chat"), SocketNotFound),
        (ValueError("boom"), InvokeError),
    ],
    ids=["remote", "timeout", "closed", "not-found", "other"],
)
async def test_the_serving_sides_failure_is_raised_on_the_caller(
    pair: Pair, raised: Exception, expected: type[Exception]
) -> None:
    pair.sock = Socket(raised)
    with pytest.raises(expected) as caught:
        await pair.call()
    if isinstance(raised, RemoteError):
        assert isinstance(caught.value, RemoteError)
        assert (caught.value.code, caught.value.message, caught.value.data) == (-32000, "no", {"k": 1})
    if isinstance(raised, ValueError):
        assert "boom" in str(caught.value)


async def test_a_socket_no_longer_on_the_serving_node_is_socket_not_found(pair: Pair) -> None:
    pair.sock = None
    with pytest.raises(SocketNotFound):
        await pair.call()


async def test_an_envelope_the_layer_refuses_is_a_delivery_error_and_counted() -> None:
    """No channel layer: the call fails at once, counted, and nothing is left waiting."""
    calls = Calls()
    before = stats().get(Count.DROPPED_NO_LAYER.value, 0)
    with pytest.raises(DeliveryError):
        await calls.call(Link(None), SERVER, invoke_envelope("chat", "s1", "m", (), 5.0, CALLER), 5.0)
    assert stats().get(Count.DROPPED_NO_LAYER.value, 0) == before + 1
    assert calls.waiting == {}


async def test_no_reply_within_timeout_and_margin_is_invoke_timeout_and_a_late_reply_is_dropped() -> None:
    """The caller gives up after ``timeout + margin`` (here 0: at once); a reply after that
    settles nothing."""
    layer = InMemoryChannelLayer()
    calls = Calls()
    envelope = invoke_envelope("chat", "s1", "double", (), 0.0, CALLER)
    with pytest.raises(InvokeTimeout) as caught:
        await calls.call(Link(layer), SERVER, envelope, 0.0, margin=0.0)
    assert (caught.value.socket_id, caught.value.method) == ("s1", "double")
    assert calls.waiting == {}
    sent = await layer.receive(SERVER)
    calls.settle({"call": sent["call"], "socket": "s1", "method": "double", "result": "late"})
    assert calls.waiting == {}
