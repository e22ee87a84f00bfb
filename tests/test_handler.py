"""``WebSocketHandler`` (wsmanager.handlers._handler): ids, the registry, frames, limits,
origins, the queue. What its hooks do when overridden is in tests/test_hooks.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from tests import handlers
from tests.handlers import (
    EchoHandler,
    HelloHandler,
    RecordingHandler,
    application,
)
from wsmanager import CloseCode, State
from wsmanager.node import get_node
from wsmanager.observe import _counters as counters

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


@pytest.fixture(autouse=True)
def _clean_events() -> Iterator[None]:
    """Each test starts with no recorded events."""
    handlers.reset()
    yield
    handlers.reset()


def client(path: str, origin: bytes | None = None) -> WebsocketCommunicator:
    """A communicator on ``ws://localhost:8000/<path>`` (its Host header), with an Origin when given."""
    headers = [(b"host", b"localhost:8000")] + ([(b"origin", origin)] if origin is not None else [])
    return WebsocketCommunicator(application, path, headers=headers)


async def hello(path: str = "/ws/hello/") -> tuple[WebsocketCommunicator, dict[str, Any]]:
    """An open HelloHandler socket and the report it sent from ``on_connect``."""
    comm = client(path)
    accepted, _ = await comm.connect()
    assert accepted
    return comm, json.loads(await comm.receive_from())


async def receive_close(comm: WebsocketCommunicator) -> dict[str, Any]:
    """The next message from the app, asserted to be a close."""
    message: dict[str, Any] = await comm.receive_output()
    assert message["type"] == "websocket.close", message
    return message


# -- ids and the registry ------------------------------------------------------------


async def test_socket_ids_are_43_url_safe_characters_and_unique() -> None:
    """Every socket gets a fresh 43-character URL-safe id."""
    ids = []
    for _ in range(10):
        comm, report = await hello()
        ids.append(report["id"])
        await comm.disconnect()
    assert all(ID_PATTERN.fullmatch(sid) for sid in ids), ids
    assert len(set(ids)) == len(ids)


async def test_socket_is_registered_during_on_connect() -> None:
    """``on_connect`` already finds its own entry in the registry."""
    comm, report = await hello()
    assert report["registered"] is True
    await comm.disconnect()


async def test_socket_entry_describes_it_after_connect() -> None:
    """After the handshake the entry holds the id, handler, node and route."""
    comm, report = await hello("/ws/rooms/lobby/7/")
    info = await HelloHandler.manager.aget(report["id"])
    assert info.id == report["id"]
    assert info.handler == HelloHandler.handler_name
    assert info.node == get_node().id
    assert info.user_id is None
    assert dict(info.path_kwargs) == {"room": "lobby", "seat": 7}
    assert info.connected_at > 0
    await comm.disconnect()


async def test_socket_leaves_the_registry_on_disconnect() -> None:
    """A client disconnect removes the entry and detaches the socket from the node."""
    comm, report = await hello()
    assert await HelloHandler.manager.aids() == [report["id"]]
    await comm.disconnect()
    assert await HelloHandler.manager.aexists(report["id"]) is False
    assert await HelloHandler.manager.acount() == 0
    assert report["id"] not in get_node().sockets


async def test_cancelled_socket_task_still_cleans_up_and_runs_on_disconnect() -> None:
    """A socket task cancelled by a server shutdown leaves the registry, code 1001."""
    comm = client("/ws/record/")
    assert (await comm.connect())[0]
    (sid,) = await RecordingHandler.manager.aids()
    comm.future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await comm.future
    assert await RecordingHandler.manager.acount() == 0
    assert handlers.events == [("disconnect", sid, CloseCode.GOING_AWAY, False, State.CLOSED)]


# -- frames ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        {"text": "a" * 1000},
        {"bytes": b"a" * 1000},
        {"text": "€" * 333},  # 999 bytes in UTF-8
    ],
    ids=["text", "binary", "multibyte-text"],
)
async def test_frame_at_the_size_limit_is_accepted(frame: dict[str, Any]) -> None:
    """A frame of exactly ``max_message_size`` bytes or fewer reaches on_receive."""
    comm = client("/ws/small/")
    assert (await comm.connect())[0]
    await comm.send_input({"type": "websocket.receive", **frame})
    assert await comm.receive_output() == {"type": "websocket.send", **frame}
    await comm.disconnect()


@pytest.mark.parametrize(
    "frame",
    [
        {"text": "a" * 1001},
        {"bytes": b"a" * 1001},
        {"text": "€" * 334},  # 334 characters, 1,002 bytes in UTF-8
        {"text": "😀" * 300},  # 300 characters, 1,200 bytes in UTF-8
    ],
    ids=["text", "binary", "multibyte-text", "emoji-text"],
)
async def test_frame_over_the_size_limit_closes_1009(frame: dict[str, Any]) -> None:
    """A frame over ``max_message_size`` bytes (UTF-8 for text) closes with 1009."""
    comm = client("/ws/small/")
    assert (await comm.connect())[0]
    await comm.send_input({"type": "websocket.receive", **frame})
    assert (await receive_close(comm))["code"] == 1009
    await comm.send_to(text_data="sent while closing")
    assert await comm.receive_nothing()
    assert (counters.stats().get("refused_too_big", 0), counters.stats().get("dropped_incoming", 0)) == (1, 1)
    await comm.disconnect(1009)
    assert await EchoHandler.manager.acount() == 0


async def test_outgoing_queue_overflow_closes_1013() -> None:
    """More queued frames than MAX_OUTGOING_QUEUE close the socket with 1013."""
    with override_settings(WSMANAGER={"MAX_OUTGOING_QUEUE": 3}):
        comm = client("/ws/flood/5/")
        assert (await comm.connect())[0]
        assert [await comm.receive_from() for _ in range(3)] == ["0", "1", "2"]
        assert (await receive_close(comm))["code"] == 1013
        await comm.disconnect(1013)
    assert counters.stats().get("dropped_overflow", 0) == 2


# -- errors and disconnects -------------------------------------------------------------


async def test_frames_after_close_are_dropped_and_counted() -> None:
    """A send after the socket closed returns False, writes nothing, and is counted."""
    comm = client("/ws/record/")
    assert (await comm.connect())[0]
    before = counters.stats().get("dropped_closed", 0)
    await comm.send_to(text_data="close-then-send")
    assert (await receive_close(comm))["code"] == 4000
    assert await comm.receive_nothing()
    assert handlers.events == [("late send", False)]
    assert counters.stats().get("dropped_closed", 0) == before + 1
    await comm.disconnect(4000)


async def test_frames_after_a_server_close_are_ignored() -> None:
    """Frames the server receives after its own close do not reach on_receive."""
    comm = client("/ws/record/")
    assert (await comm.connect())[0]
    (sid,) = await RecordingHandler.manager.aids()
    await RecordingHandler.manager.adisconnect(sid, 4001)
    await receive_close(comm)
    await comm.send_to(text_data="echo me")
    assert await comm.receive_nothing()
    await comm.disconnect(4001)


# -- origins -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        None,
        b"http://localhost",
        b"http://localhost:8000",
        b"HTTP://LocalHost:8000",
        b"http://127.0.0.1:8000",
        b"http://[::1]:8000",
    ],
)
async def test_allowed_origins_connect(origin: bytes | None) -> None:
    """No Origin, or an http page (the socket is ws://) on a host in ALLOWED_HOSTS, on port 80
    or the socket's own port 8000, any case."""
    comm = client("/ws/echo/", origin)
    assert (await comm.connect())[0]
    await comm.disconnect()


@pytest.mark.parametrize(
    "origin",
    [
        b"null",
        b"",
        b"https://evil.example",
        b"http://localhost.evil.example",
        b"http://evillocalhost",
        b"http://sub.localhost",
        b"http://localhost@evil.example",
        b"http://127.0.0.2",
        b"localhost",
        b"file://localhost",
        b"http://[::2]:8000",
        b"https://localhost:8443",  # another scheme than the socket's (ws: http)
        b"https://localhost:8000",
        b"ws://localhost",
        b"http://127.0.0.1:3000",  # another port than the socket's or the default
    ],
)
async def test_forged_or_foreign_origins_are_refused(origin: bytes) -> None:
    """Origins whose host is not allowed, other schemes and ports, ``null`` and junk: 403."""
    comm = client("/ws/echo/", origin)
    assert await comm.connect() == (False, 1000)
    await comm.disconnect()
    assert await EchoHandler.manager.acount() == 0


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (None, True),
        (b"https://example.com:8443", True),
        (b"https://EXAMPLE.com:8443", True),
        (b"https://example.com", False),
        (b"http://example.com:8443", False),
        (b"http://localhost:8000", False),
    ],
)
async def test_handler_origin_pattern_with_scheme_checks_scheme_and_port(
    origin: bytes | None, accepted: bool
) -> None:
    """A handler's ``allowed_origins`` with a scheme must match scheme, host and port."""
    comm = client("/ws/strict/", origin)
    assert (await comm.connect())[0] is accepted
    await comm.disconnect()


async def test_require_origin_refuses_a_missing_origin() -> None:
    """With REQUIRE_ORIGIN, a handshake without Origin is refused."""
    with override_settings(WSMANAGER={"REQUIRE_ORIGIN": True}):
        missing = client("/ws/echo/")
        assert await missing.connect() == (False, 1000)
        await missing.disconnect()
        present = client("/ws/echo/", b"http://localhost:8000")
        assert (await present.connect())[0]
        await present.disconnect()


async def test_allowed_origins_setting_replaces_allowed_hosts() -> None:
    """WSMANAGER ALLOWED_ORIGINS takes precedence over ALLOWED_HOSTS."""
    with override_settings(WSMANAGER={"ALLOWED_ORIGINS": [".example.com"]}):
        comm = client("/ws/echo/", b"http://chat.example.com")
        assert (await comm.connect())[0]
        await comm.disconnect()
        local = client("/ws/echo/", b"http://localhost:8000")
        assert await local.connect() == (False, 1000)
        await local.disconnect()


async def test_wildcard_origin_lets_everything_in() -> None:
    """ALLOWED_ORIGINS ``["*"]`` accepts any origin, even ``null``."""
    with override_settings(WSMANAGER={"ALLOWED_ORIGINS": ["*"]}):
        for origin in (b"https://evil.example", b"null"):
            comm = client("/ws/echo/", origin)
            assert (await comm.connect())[0]
            await comm.disconnect()


# -- the handler class ---------------------------------------------------------------------


def test_handler_name_defaults_to_module_and_qualname() -> None:
    """A handler without ``name`` is namespaced by its dotted class path."""
    assert EchoHandler.handler_name == "tests.handlers.EchoHandler"
    assert EchoHandler.manager.handler_name == EchoHandler.handler_name


async def test_send_without_data_raises() -> None:
    """The channels-style ``send()`` needs text_data or bytes_data."""
    with pytest.raises(ValueError, match="text_data or bytes_data"):
        await EchoHandler().send()


# -- connections per client address -----------------------------------------------------------


def from_address(path: str, peer: str) -> WebsocketCommunicator:
    comm = client(path)
    comm.scope["client"] = [peer, 40000]
    return comm


async def test_sockets_over_the_per_address_cap_are_closed_4429_without_being_registered() -> None:
    """The third socket from one address is accepted and closed 4429; another address still gets in."""
    first, second = (
        from_address("/ws/two-per-address/", "198.51.100.7"),
        from_address("/ws/two-per-address/", "198.51.100.7"),
    )
    assert (await first.connect())[0] and (await second.connect())[0]
    before = await EchoHandler.manager.acount()
    third = from_address("/ws/two-per-address/", "198.51.100.7")
    assert (await third.connect())[0]
    close = await receive_close(third)
    assert (close["code"], close.get("reason")) == (4429, "too many connections")
    assert await EchoHandler.manager.acount() == before  # nothing was registered for it
    assert counters.stats()["refused_handshake"] == 1
    other = from_address("/ws/two-per-address/", "198.51.100.8")
    assert (await other.connect())[0]
    await first.disconnect()
    again = from_address("/ws/two-per-address/", "198.51.100.7")  # a slot was freed
    assert (await again.connect())[0]
    await again.send_to(text_data="still echoing")
    assert await again.receive_from() == "still echoing"
    for comm in (second, third, other, again):
        await comm.disconnect()


async def test_the_address_is_kept_in_the_registry_entry() -> None:
    comm = from_address("/ws/two-per-address/", "2001:db8::5")
    assert (await comm.connect())[0]
    (info,) = await EchoHandler.manager.aall()
    assert info.address == "2001:db8::5"
    await comm.disconnect()
