"""``wsmanager.servers``: detecting the server behind ``send``, and daphne's adapter
(backlog probe, close frames). Each real server is detected in tests/e2e/test_servers.py."""

from __future__ import annotations

import asyncio
import functools
import sys
from typing import Any

import pytest
from channels.sessions import InstanceSessionWrapper

from tests.fake_daphne import FakeProtocol, autobahn_like_reply, daphne_send
from wsmanager import CloseCode, servers
from wsmanager.servers import adapter_for, send_backlog_probe, send_close_frame, server_name


def behind_session_middleware(send: Any) -> Any:
    """``send`` as an application under Channels' AuthMiddlewareStack receives it."""
    return InstanceSessionWrapper({"type": "websocket", "cookies": {}}, send).send


def send_defined_in(module: str) -> Any:
    """A send callable (a bound method, as uvicorn and hypercorn give) of a class in ``module``."""

    async def asgi_send(self: Any, message: dict[str, Any]) -> None:
        return None

    asgi_send.__module__ = module
    cls = type("Protocol", (), {"asgi_send": asgi_send, "__module__": module})
    return cls().asgi_send


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("uvicorn.protocols.websockets.websockets_impl", "uvicorn"),
        ("uvicorn.protocols.websockets.websockets_sansio_impl", "uvicorn"),
        ("uvicorn.protocols.websockets.wsproto_impl", "uvicorn"),
        ("hypercorn.protocol.ws_stream", "hypercorn"),
        ("granian._granian", "granian"),
        ("myserver.ws", "asgi"),
    ],
)
def test_servers_are_told_apart_by_the_package_of_their_send(module: str, name: str) -> None:
    """The package defining ``send`` names the server, also behind the session middleware."""
    send = send_defined_in(module)
    assert server_name(send) == name
    assert server_name(behind_session_middleware(send)) == name
    assert send_backlog_probe(send) is None
    if not module.endswith("websockets_impl"):
        assert send_close_frame(send, 1008, "x") is False


def test_daphne_is_recognised_through_its_partial_and_the_middleware() -> None:
    send = daphne_send(FakeProtocol())
    assert server_name(send) == "daphne"
    assert adapter_for(behind_session_middleware(send)) is adapter_for(send)
    assert isinstance(adapter_for(send), servers.DaphneAdapter)


def test_backlog_probe_reads_the_transport_behind_daphnes_send() -> None:
    """The probe finds the transport through daphne's partial, also behind the session middleware."""
    protocol = FakeProtocol()
    probe = send_backlog_probe(daphne_send(protocol))
    assert probe is not None and probe() == 10 - 4 + 100
    probe = send_backlog_probe(behind_session_middleware(daphne_send(protocol)))
    assert probe is not None and probe() == 106
    protocol.transport._tempDataLen = 0
    assert probe() == 6


def test_backlog_probe_is_unavailable_elsewhere() -> None:
    """Sends that are not daphne's, or a daphne send without a transport, give no probe (None)."""

    async def plain_send(message: dict[str, Any]) -> None:
        return None

    assert send_backlog_probe(plain_send) is None
    assert send_backlog_probe(functools.partial(plain_send)) is None
    assert send_backlog_probe(functools.partial(autobahn_like_reply, object(), [])) is None
    assert send_backlog_probe(functools.partial(autobahn_like_reply)) is None


def test_send_close_frame_writes_on_daphnes_protocol() -> None:
    """The code goes out as an int with at most 123 bytes of whole characters of reason."""
    protocol = FakeProtocol()
    send = behind_session_middleware(daphne_send(protocol))
    assert send_close_frame(send, CloseCode.MESSAGE_TOO_BIG, "message too big") is True
    assert send_close_frame(send, 1013, "€" * 100) is True
    assert send_close_frame(send, 1008, None) is True
    (code, reason, reply), (_, long_reason, _), (_, no_reason, _) = protocol.close_frames
    assert (code, reason, reply) == (1009, b"message too big", False) and type(code) is int
    assert long_reason == ("€" * 41).encode()  # 123 bytes
    assert no_reason is None


class AutobahnState(FakeProtocol):
    """What daphne's adapter reads of autobahn's state."""

    STATE_OPEN = 1
    STATE_CLOSED = 3

    def __init__(self, state: int) -> None:
        super().__init__()
        self.state = state


def test_a_send_on_a_connection_no_longer_open_is_told_from_a_refused_frame() -> None:
    """An OSError (ASGI's, uvicorn's ClientDisconnected) means the connection ended, on any
    server; under daphne, so does any error while autobahn's protocol is not OPEN any more
    (its ``Disconnected``), while a frame it refuses on an open connection does not."""
    from uvicorn.protocols.utils import ClientDisconnected

    uvicorn_send = send_defined_in("uvicorn.protocols.websockets.websockets_sansio_impl")
    assert servers.connection_ended(uvicorn_send, ClientDisconnected()) is True
    assert servers.connection_ended(uvicorn_send, UnicodeEncodeError("utf-8", "", 0, 1, "x")) is False
    assert servers.connection_ended(send_defined_in("myserver.ws"), ConnectionResetError()) is True

    closed = behind_session_middleware(daphne_send(AutobahnState(AutobahnState.STATE_CLOSED)))
    opened = daphne_send(AutobahnState(AutobahnState.STATE_OPEN))
    assert servers.connection_ended(closed, RuntimeError("Attempt to send on a closed protocol")) is True
    assert servers.connection_ended(opened, RuntimeError("payload exceeds the limit")) is False
    assert servers.connection_ended(daphne_send(FakeProtocol()), RuntimeError("no state to read")) is False


def test_send_close_frame_leaves_other_servers_to_asgi() -> None:
    async def plain_send(message: dict[str, Any]) -> None:
        return None

    assert send_close_frame(plain_send, 1009, "x") is False
    assert send_close_frame(functools.partial(autobahn_like_reply, object(), []), 1009, "x") is False


def test_call_when_running_needs_a_twisted_reactor_that_is_not_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only a reactor installed and not yet running (daphne loading the app) gets the callback."""

    class Reactor:
        def __init__(self, running: bool) -> None:
            self.running = running
            self.callbacks: list[Any] = []

        def callWhenRunning(self, callback: Any) -> None:
            self.callbacks.append(callback)

    monkeypatch.delitem(sys.modules, "twisted.internet.reactor", raising=False)
    assert servers.call_when_running(print) is False
    waiting, running = Reactor(running=False), Reactor(running=True)
    monkeypatch.setitem(sys.modules, "twisted.internet.reactor", waiting)
    assert servers.call_when_running(print) is True
    assert waiting.callbacks == [print]
    monkeypatch.setitem(sys.modules, "twisted.internet.reactor", running)
    assert servers.call_when_running(print) is False
    assert running.callbacks == []


async def test_uvicorn_websockets_closes_are_sent_without_waiting_for_the_handshake() -> None:
    """uvicorn's websockets implementation awaits the closing handshake in send: the close goes
    out in a task, and send_close_frame returns before it is done."""
    sent: list[dict[str, Any]] = []
    handshake = asyncio.Event()

    async def asgi_send(self: Any, message: dict[str, Any]) -> None:
        await handshake.wait()
        sent.append(message)

    asgi_send.__module__ = "uvicorn.protocols.websockets.websockets_impl"
    protocol = type("WebSocketProtocol", (), {"asgi_send": asgi_send})()
    send = protocol.asgi_send
    assert isinstance(adapter_for(behind_session_middleware(send)), servers.UvicornWebsocketsAdapter)
    assert send_close_frame(send, 1008, "rate limit exceeded") is True
    await asyncio.sleep(0)
    assert sent == []  # still waiting for the client's answer, and the caller went on
    handshake.set()
    adapter = adapter_for(send)
    assert isinstance(adapter, servers.UvicornWebsocketsAdapter)
    await asyncio.wait_for(asyncio.gather(*adapter._closing), 2)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "rate limit exceeded"}]


@pytest.mark.parametrize(
    ("module", "refused"),
    [
        ("granian._granian", True),  # never compresses: nothing to refuse
        ("uvicorn.protocols.websockets.websockets_sansio_impl", False),  # no protocol attributes
        ("hypercorn.protocol.ws_stream", False),
        ("myserver.ws", False),
    ],
)
def test_refuse_compression_says_whether_the_socket_will_be_uncompressed(
    module: str, refused: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Where the adapter finds nothing it knows (a stand-in, an unknown server) the answer is
    False and a warning is logged once per server, never an exception; each real server's
    refusal is checked over a real handshake in tests/e2e/test_compression_e2e.py."""
    send = send_defined_in(module)
    with caplog.at_level("WARNING", logger="wsmanager.servers"):
        assert servers.refuse_compression(send) is refused
        assert servers.refuse_compression(behind_session_middleware(send)) is refused
    warnings = [r for r in caplog.records if "cannot be told not to compress" in r.getMessage()]
    assert len(warnings) == (0 if refused else 1)


def test_daphne_never_compresses_so_refusing_holds() -> None:
    assert servers.refuse_compression(daphne_send(FakeProtocol())) is True


def test_uvicorn_wsproto_connections_refusing_compression_share_one_copy_of_the_config() -> None:
    """The server's own config keeps compressing (other handlers); the refusing connections read
    one copy that says no, made once, not one per socket."""
    config = type("Config", (), {"ws_per_message_deflate": True})()
    sends = [send_defined_in("uvicorn.protocols.websockets.wsproto_impl") for _ in range(2)]
    for send in sends:
        send.__self__.config = config
        assert servers.refuse_compression(send) is True
    first, second = (send.__self__.config for send in sends)
    assert first is second and first is not config
    assert first.ws_per_message_deflate is False and config.ws_per_message_deflate is True
