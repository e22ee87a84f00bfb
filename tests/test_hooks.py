"""The hooks a handler overrides (wsmanager.handlers._hooks), by what each override does:
on_connect's refusals and queued frames, on_open, on_receive, on_error, on_disconnect.

Elsewhere: ``authorize`` in tests/test_refusals.py, ``on_rate_limited`` and
``frame_cost`` in tests/test_limits.py, ``on_resume`` in tests/test_resumable.py,
``on_presence`` and ``on_presence_changes`` in tests/test_presence.py and
tests/test_presence_bursts.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from channels.testing import WebsocketCommunicator

from tests import handlers
from tests.handlers import FailingHandler, RecordingHandler, RefusingHandler
from tests.test_handler import client, receive_close
from wsmanager import State, WebSocketHandler, route, websocket_app


@pytest.fixture(autouse=True)
def _clean_events() -> Iterator[None]:
    """Each test starts with no recorded events."""
    handlers.reset()
    yield
    handlers.reset()


class OpeningHandler(WebSocketHandler):
    """Queues a frame in ``on_connect`` and sends one from ``on_open``."""

    async def on_connect(self) -> None:
        await self.send_frame("queued in on_connect")

    async def on_open(self) -> None:
        handlers.events.append(("open", self.state))
        await self.send_frame("sent from on_open")


class ForgivingHandler(WebSocketHandler):
    """``on_receive`` raises on "boom"; its ``on_error`` records and keeps the socket open."""

    async def on_receive(self, message: str | bytes) -> None:
        if message == "boom":
            raise ValueError("boom")
        await self.send_frame(message)

    async def on_error(self, exc: Exception) -> None:
        handlers.events.append(("error", repr(exc)))


app = websocket_app([route("ws/open/", OpeningHandler), route("ws/forgive/", ForgivingHandler)], auth=False)


# -- on_connect: refusing, and frames queued before the handshake ----------------------


@pytest.mark.parametrize("how", ["false", "reject", "raise"])
async def test_refusal_without_code_refuses_the_handshake(how: str) -> None:
    """``False``, ``RejectConnection()`` and any exception refuse with HTTP 403."""
    comm = client(f"/ws/refuse/{how}/")
    accepted, code = await comm.connect()
    assert (accepted, code) == (False, 1000)
    assert await comm.receive_nothing()
    await comm.disconnect()
    [(_, sid, registered)] = handlers.events
    assert registered is True
    assert await RefusingHandler.manager.aexists(sid) is False
    assert await RefusingHandler.manager.acount() == 0


async def test_refusal_with_code_accepts_then_closes_with_it() -> None:
    """``RejectConnection(code=4003)`` accepts, then closes with 4003 and the reason."""
    comm = client("/ws/refuse/reject-code/")
    accepted, _ = await comm.connect()
    assert accepted
    close = await receive_close(comm)
    assert (close.get("code"), close.get("reason")) == (4003, "not you")
    await comm.disconnect(4003)
    assert await RefusingHandler.manager.acount() == 0


async def test_refused_socket_never_runs_on_disconnect() -> None:
    """``on_disconnect`` is for sockets that opened; refused ones skip it."""
    for how in ("false", "reject", "reject-code", "raise"):
        comm = client(f"/ws/refuse/{how}/")
        await comm.connect()
        await comm.disconnect()
    assert [event[0] for event in handlers.events] == ["connect"] * 4


async def test_accepted_socket_of_a_refusing_handler_gets_queued_frames() -> None:
    """An ``on_connect`` that returns None accepts and delivers what it queued."""
    comm = client("/ws/refuse/accept/")
    assert (await comm.connect())[0]
    assert await comm.receive_from() == "queued before the refusal"
    await comm.disconnect()


async def test_frames_queued_in_on_connect_arrive_after_accept_in_order() -> None:
    """Frames sent before the handshake, directly or via the manager, follow the accept."""
    comm = client("/ws/queue/")
    assert (await comm.connect())[0]
    received = [await comm.receive_from() for _ in range(5)]
    assert received == ["one", b"two", "three", '{"n":4}', "five"]
    assert await comm.receive_nothing()
    await comm.disconnect()


# -- on_open ---------------------------------------------------------------------------


async def test_on_open_runs_once_open_and_its_frames_go_out_before_those_queued_in_on_connect() -> None:
    comm = WebsocketCommunicator(app, "/ws/open/")
    assert (await comm.connect())[0]
    assert [await comm.receive_from(), await comm.receive_from()] == [
        "sent from on_open",
        "queued in on_connect",
    ]
    assert handlers.events == [("open", State.OPEN)]
    await comm.disconnect()


# -- on_receive and on_error -----------------------------------------------------------


@pytest.mark.parametrize("size", [0, 130, 128 * 1024])
async def test_text_frames_reach_on_receive_as_str(size: int) -> None:
    """Text frames of 0, 130 and 128 KiB bytes arrive whole, as ``str``."""
    comm = client("/ws/echo/")
    assert (await comm.connect())[0]
    data = "x" * size
    await comm.send_input({"type": "websocket.receive", "text": data})
    assert await comm.receive_output() == {"type": "websocket.send", "text": data}
    await comm.disconnect()


@pytest.mark.parametrize("size", [0, 130, 128 * 1024])
async def test_binary_frames_reach_on_receive_as_bytes(size: int) -> None:
    """Binary frames of 0, 130 and 128 KiB bytes arrive whole, as ``bytes``."""
    comm = client("/ws/echo/")
    assert (await comm.connect())[0]
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    await comm.send_input({"type": "websocket.receive", "bytes": data})
    assert await comm.receive_output() == {"type": "websocket.send", "bytes": data}
    await comm.disconnect()


async def test_on_receive_exception_closes_1011_and_leaves_registry() -> None:
    """An exception in ``on_receive`` closes with 1011 and removes the entry."""
    comm = client("/ws/fail/")
    assert (await comm.connect())[0]
    await comm.send_to(text_data="boom")
    assert (await receive_close(comm))["code"] == 1011
    assert await FailingHandler.manager.acount() == 0
    await comm.disconnect(1011)
    assert [event[0] for event in handlers.events] == ["receive"]


async def test_an_on_error_that_does_not_close_keeps_the_socket_open() -> None:
    """Overriding ``on_error`` replaces the 1011 close: the socket goes on receiving."""
    comm = WebsocketCommunicator(app, "/ws/forgive/")
    assert (await comm.connect())[0]
    await comm.send_to(text_data="boom")
    await comm.send_to(text_data="still here")
    assert await comm.receive_from() == "still here"
    assert handlers.events == [("error", "ValueError('boom')")]
    assert await ForgivingHandler.manager.acount() == 1
    await comm.disconnect()


# -- on_disconnect ---------------------------------------------------------------------


async def test_on_disconnect_runs_once_with_the_code_after_registry_removal() -> None:
    """``on_disconnect(code)`` runs once, the socket already gone from the registry."""
    comm = client("/ws/record/")
    assert (await comm.connect())[0]
    (sid,) = await RecordingHandler.manager.aids()
    await comm.disconnect(4321)
    assert handlers.events == [("disconnect", sid, 4321, False, State.CLOSED)]


async def test_on_disconnect_runs_once_after_a_server_side_close() -> None:
    """A server close then the client's disconnect gives one ``on_disconnect``."""
    comm = client("/ws/record/")
    assert (await comm.connect())[0]
    (sid,) = await RecordingHandler.manager.aids()
    await RecordingHandler.manager.adisconnect(sid, 4001, "bye")
    assert await receive_close(comm) == {"type": "websocket.close", "code": 4001, "reason": "bye"}
    assert await RecordingHandler.manager.acount() == 0
    assert handlers.events == []
    await comm.disconnect(4001)
    assert handlers.events == [("disconnect", sid, 4001, False, State.CLOSED)]
