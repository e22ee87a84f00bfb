"""``wsmanager.observe._hub``: the hub the core reports to, and what it costs when empty."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

from tests.handlers import CalcHandler, EchoHandler, application
from wsmanager import RpcError
from wsmanager.jsonrpc._params import BadParams
from wsmanager.observe import _hub as observe
from wsmanager.testing import RpcCommunicator
from wsmanager_client.protocol import INTERNAL_ERROR, INVALID_PARAMS, UNAVAILABLE


class Recorder(observe.Observer):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def connection_opened(self, handler: str) -> None:
        self.events.append(("opened", handler))

    def connection_closed(self, handler: str, code: int) -> None:
        self.events.append(("closed", handler, code))

    def frame_received(self, handler: str) -> None:
        self.events.append(("received", handler))

    def frame_sent(self, handler: str) -> None:
        self.events.append(("sent", handler))

    def handshake_finished(self, sock: observe.Socket, token: Any, accepted: bool) -> None:
        self.events.append(("handshake", sock.handler_name, accepted))

    def rpc_finished(
        self, sock: observe.Socket, method: str, token: Any, seconds: float, code: int | None
    ) -> None:
        assert seconds >= 0
        self.events.append(("rpc", method, code))


@pytest.fixture
def recorder() -> Any:
    before = observe.observers()
    for o in before:
        observe.remove(o)
    rec = Recorder()
    observe.add(rec)
    yield rec
    observe.remove(rec)
    for o in before:
        observe.add(o)


def test_the_hub_is_none_without_observers_and_back_to_none_after_the_last() -> None:
    before = observe.observers()
    for o in before:
        observe.remove(o)
    try:
        assert observe.hub is None
        a, b = observe.Observer(), observe.Observer()
        observe.add(a)
        observe.add(b)
        observe.add(a)
        assert observe.observers() == (a, b)
        observe.remove(a)
        observe.remove(b)
        assert observe.hub is None
    finally:
        for o in before:
            observe.add(o)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (RpcError(4000, "no"), 4000),
        (BadParams("x"), INVALID_PARAMS),
        (ConnectionError("db"), INTERNAL_ERROR),
        (asyncio.CancelledError(), observe.CANCELLED),
    ],
)
def test_error_code_is_what_the_client_is_answered(exc: BaseException, code: int) -> None:
    assert observe.error_code(exc) == code


def test_registry_and_delivery_failures_are_unavailable() -> None:
    from wsmanager.exceptions import DeliveryError, RegistryUnavailable

    assert observe.error_code(RegistryUnavailable("x")) == UNAVAILABLE
    assert observe.error_code(DeliveryError("x")) == UNAVAILABLE


async def test_a_socket_reports_open_frames_calls_and_close(recorder: Recorder) -> None:
    """One socket's life, as the observer sees it, in order."""
    calc = CalcHandler.handler_name
    async with RpcCommunicator(application, "/ws/calc/") as client:
        assert await client.call("add", 1, 2) == 3
        await client.request("nope")
    await asyncio.sleep(0)
    assert recorder.events == [
        ("opened", calc),
        ("sent", calc),  # rpc.connected, written as the handshake completes
        ("handshake", calc, True),
        ("received", calc),
        ("rpc", "add", None),
        ("sent", calc),
        ("received", calc),
        ("rpc", "nope", -32601),
        ("sent", calc),
        ("closed", calc, 1000),
    ]


async def test_a_server_side_close_reports_its_code_once(recorder: Recorder) -> None:
    """The server closes with 1009 (frame too big): one close event with that code."""
    from channels.testing import WebsocketCommunicator

    comm = WebsocketCommunicator(application, "/ws/small/")
    assert (await comm.connect())[0]
    await comm.send_to(text_data="x" * 10_000)
    assert (await comm.receive_output())["type"] == "websocket.close"
    await comm.disconnect()
    closes = [e for e in recorder.events if e[0] == "closed"]
    assert closes == [("closed", "tests.handlers.SmallEchoHandler", 1009)]
    assert EchoHandler.handler_name != "tests.handlers.SmallEchoHandler"


def loaded_after(imports: str) -> list[str]:
    """The metrics and tracing libraries (and modules) loaded by a fresh process after ``imports``."""
    code = (
        "import django, sys; from django.conf import settings;"
        "settings.configure(INSTALLED_APPS=['wsmanager']); django.setup();"
        f"import {imports};"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith("
        "('prometheus_client', 'opentelemetry', 'wsmanager.ops.metrics', 'wsmanager.ops.tracing')))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_the_core_imports_neither_prometheus_nor_opentelemetry() -> None:
    """Without the extras in use, importing every core module pulls in neither library."""
    assert (
        loaded_after(
            "wsmanager, wsmanager.jsonrpc._dispatch, wsmanager.handlers._routing, wsmanager.ops.probes"
        )
        == []
    )


def test_with_the_redis_registry_only_redis_py_brings_opentelemetry() -> None:
    """redis-py 8 imports OpenTelemetry for its own instrumentation; wsmanager adds nothing."""
    loaded = loaded_after("wsmanager.jsonrpc._dispatch, wsmanager.registry.redis")
    assert not [m for m in loaded if not m.startswith("opentelemetry")]
