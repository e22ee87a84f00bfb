"""``wsmanager.node._remote``: an invoke's outcome crosses processes as plain data and comes
back as the same exception, with its facts."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from wsmanager import ConnectionClosed, InvokeError, InvokeTimeout, RemoteError, SocketNotFound
from wsmanager.node._remote import error_of, exception_of


def round_trip(exc: BaseException, timeout: float = 2.5) -> Exception | None:
    """Encode as the serving node does, through msgpack as channels_redis does, and decode."""
    reply: dict[str, Any] = {"socket": "s1", "method": "ask", "timeout": timeout, "error": error_of(exc)}
    return exception_of(msgpack.unpackb(msgpack.packb(reply)))


def test_a_result_is_no_exception() -> None:
    """A reply without ``error`` stands for a result."""
    assert exception_of({"socket": "s1", "method": "ask", "timeout": 1.0, "result": None}) is None


@pytest.mark.parametrize("data", [None, {"why": ["because", 1]}])
def test_remote_error_keeps_code_message_and_data(data: Any) -> None:
    """The client's JSON-RPC error arrives with its code, message and data."""
    back = round_trip(RemoteError("s1", "ask", 4000, "Nope", data))
    assert isinstance(back, RemoteError)
    facts = (back.socket_id, back.method, back.code, back.message, back.data)
    assert facts == ("s1", "ask", 4000, "Nope", data)


def test_timeout_keeps_its_duration() -> None:
    """A call the client never answered is an InvokeTimeout with the call's timeout."""
    back = round_trip(InvokeTimeout("s1", "ask", 2.5))
    assert isinstance(back, InvokeTimeout)
    assert (back.socket_id, back.method, back.timeout) == ("s1", "ask", 2.5)


def test_unknown_socket_and_closed_socket_keep_their_facts() -> None:
    """SocketNotFound keeps the id; ConnectionClosed the id and the close code."""
    missing = round_trip(SocketNotFound("s1", "chat"))
    assert isinstance(missing, SocketNotFound) and missing.socket_id == "s1"
    closed = round_trip(ConnectionClosed("s1", 1001))
    assert isinstance(closed, ConnectionClosed)
    assert (closed.socket_id, closed.code) == ("s1", 1001)


def test_any_other_exception_becomes_an_invoke_error_with_its_text() -> None:
    """An unexpected failure on the serving node arrives as InvokeError, not as its class."""
    back = round_trip(ValueError("broken on the other side"))
    assert type(back) is InvokeError
    assert "broken on the other side" in str(back)
