"""wsmanager_client against a real daphne serving the demo: calls both ways, errors,
a killed and restarted server, a frozen one, and a process without Django settings."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.client import chat_url, http
from tests.servers import ROOT, DaphneProcess
from wsmanager_client import (
    Client,
    Closed,
    Connected,
    ConnectionClosed,
    Reconnected,
    Reconnecting,
    RemoteError,
    RpcError,
    State,
    connect,
)

pytestmark = pytest.mark.e2e

WAIT = 20.0  # a bound on each wait, so that a failure shows instead of hanging; never a threshold
FAST_RETRY = {"reconnect_delay": 0.2, "reconnect_max_delay": 0.4}


class Events:
    """Every event a client reports, and a way to wait for the next one that matches."""

    def __init__(self) -> None:
        self.log: list[Any] = []
        self._changed = asyncio.Condition()

    def record(self, event: Any) -> None:
        self.log.append(event)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def callbacks(self) -> dict[str, Callable[[Any], None]]:
        names = ("on_connected", "on_reconnecting", "on_reconnected", "on_closed", "on_error")
        return dict.fromkeys(names, self.record)

    async def wait(self, match: Callable[[Any], bool], after: int = 0) -> Any:
        """The first event from index ``after`` on for which ``match`` is true."""
        async with asyncio.timeout(WAIT), self._changed:
            while True:
                for event in self.log[after:]:
                    if match(event):
                        return event
                await self._changed.wait()


@pytest.fixture
def daphnes() -> Iterator[Callable[..., DaphneProcess]]:
    """Start demo servers this test may kill, freeze or restart; all stopped at the end."""
    started: list[DaphneProcess] = []

    def start(port: int | None = None) -> DaphneProcess:
        server = DaphneProcess(port=port, env={"DEMO_DB": ":memory:"})
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


async def test_invoke_returns_results_and_notifications_reach_on_handlers(demo_server: DaphneProcess) -> None:
    """invoke() gets who() and send()'s results; `message` arrives as keywords, also after notify()."""
    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    handlers = {"message": lambda **params: messages.put_nowait(params)}
    async with connect(chat_url(demo_server, "py", "?name=ann"), handlers=handlers) as ann:
        assert ann.id is not None and len(ann.id) == 43
        assert await ann.invoke("who") == [{"id": ann.id, "name": "ann"}]
        assert await ann.invoke("send", "hello") == {"delivered": 1}
        message = await asyncio.wait_for(messages.get(), WAIT)
        assert message == {"from": ann.id, "name": "ann", "room": "py", "text": "hello"}
        await ann.notify("send", text="as a notification")
        assert (await asyncio.wait_for(messages.get(), WAIT))["text"] == "as a notification"
        assert await ann.invoke("set_name", name="  anna ") == "anna"


async def test_two_clients_hear_each_other(demo_server: DaphneProcess) -> None:
    """joined, whisper and left between two Python clients in one room."""
    heard: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    def hear(method: str) -> Callable[..., None]:
        return lambda **params: heard.put_nowait((method, params))

    handlers = {method: hear(method) for method in ("joined", "left", "message")}
    async with connect(chat_url(demo_server, "py2", "?name=ann"), handlers=handlers) as ann:
        async with connect(chat_url(demo_server, "py2", "?name=bob")) as bob:
            assert await asyncio.wait_for(heard.get(), WAIT) == ("joined", {"id": bob.id, "name": "bob"})
            assert await bob.invoke("whisper", ann.id, "psst") == {"delivered": 1}
            kind, message = await asyncio.wait_for(heard.get(), WAIT)
            assert (kind, message["text"], message["private"]) == ("message", "psst", True)
            bob_id = bob.id
        assert await asyncio.wait_for(heard.get(), WAIT) == ("left", {"id": bob_id})


async def test_server_errors_raise_remote_error_with_their_codes(demo_server: DaphneProcess) -> None:
    """Application errors (4000, 4001, 4004) and protocol errors (-32601, -32602) keep code, message, data."""
    async with connect(chat_url(demo_server, "pyerr")) as client:
        cases: list[tuple[str, tuple[Any, ...], int]] = [
            ("send", ("",), 4000),
            ("set_name", ("",), 4001),
            ("whisper", ("nobody", "psst"), 4004),
            ("nope", (), -32601),
            ("send", (1,), -32602),
            ("rpc.secret", (), -32601),
        ]
        for method, args, code in cases:
            with pytest.raises(RemoteError) as info:
                await client.invoke(method, *args)
            assert (info.value.code, info.value.method, info.value.socket_id) == (code, method, client.id)
        with pytest.raises(RemoteError) as info:
            await client.invoke("whisper", "nobody", "psst")
        assert (info.value.message, info.value.data) == ("No such member in this room", {"to": "nobody"})
        assert await client.invoke("rpc.ping") == "pong"  # still open after every error


async def test_server_to_client_calls_through_the_invoke_view(demo_server: DaphneProcess) -> None:
    """POST /api/sockets/<id>/invoke reaches sync and async handlers; errors come back with their codes."""
    seen: list[Any] = []

    def add(a: int, b: int) -> int:
        seen.append((a, b))
        return a + b

    async def greet(*, name: str) -> str:
        await asyncio.sleep(0.01)
        return f"hello {name}"

    def refuse() -> None:
        raise RpcError(4321, "Refused", {"why": "test"})

    def crash() -> None:
        raise RuntimeError("a detail that must stay here")

    handlers = {"add": add, "greet": greet, "refuse": refuse, "crash": crash}
    async with connect(chat_url(demo_server, "pyinvoke"), handlers=handlers) as client:

        async def invoke(method: str, params: Any) -> Any:
            body = {"method": method, "params": params, "timeout": 5}
            return await http("POST", demo_server, f"/api/sockets/{client.id}/invoke", json=body)

        ok = await invoke("add", [2, 3])
        assert (ok.status_code, ok.json(), seen) == (200, {"result": 5}, [(2, 3)])
        assert (await invoke("greet", {"name": "ann"})).json() == {"result": "hello ann"}
        refused = await invoke("refuse", [])
        assert refused.status_code == 502
        assert refused.json()["error"] == {"code": 4321, "message": "Refused", "data": {"why": "test"}}
        crashed = await invoke("crash", [])
        assert crashed.json()["error"] == {"code": -32603, "message": "Internal error", "data": None}
        unknown = await invoke("nope", [])
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (502, -32601)
        bad_params = await invoke("add", [1])
        assert (bad_params.status_code, bad_params.json()["error"]["code"]) == (502, -32602)
        assert seen == [(2, 3)]


async def test_reconnects_after_the_server_is_killed_and_started_again(
    daphnes: Callable[..., DaphneProcess],
) -> None:
    """SIGKILL: the call in flight fails, calls made meanwhile wait, and go out on the new socket."""
    server = daphnes()
    events = Events()
    client = Client(chat_url(server, "phoenix", "?name=ann"), **FAST_RETRY, **events.callbacks())
    first_id = await client.connect()
    server.freeze()  # so that the call below cannot be answered before the kill
    in_flight = asyncio.create_task(client.invoke("who"))
    await asyncio.sleep(0.2)
    server.kill()
    with pytest.raises(ConnectionClosed) as lost:
        await asyncio.wait_for(in_flight, WAIT)
    assert (lost.value.code, lost.value.socket_id) == (1006, first_id)

    closed = await events.wait(lambda e: isinstance(e, Closed))
    assert (closed.code, closed.will_reconnect) == (1006, True)
    queued = asyncio.create_task(client.invoke("send", "queued while down", timeout=60))
    mark = len(events.log)
    await events.wait(lambda e: isinstance(e, Reconnecting) and e.attempt >= 2, after=mark)
    assert client.state in (State.RECONNECTING, State.CONNECTING) and client.queued == 1

    daphnes(port=server.port)
    reconnected = await events.wait(lambda e: isinstance(e, Reconnected))
    assert reconnected.previous_id == first_id and reconnected.id != first_id
    assert await asyncio.wait_for(queued, WAIT) == {"delivered": 1}
    assert await client.invoke("who") == [{"id": client.id, "name": "ann"}]
    await client.close()


async def test_the_heartbeat_notices_a_frozen_server(daphnes: Callable[..., DaphneProcess]) -> None:
    """SIGSTOP: rpc.ping goes unanswered, the socket is dropped, attempts time out until SIGCONT."""
    server = daphnes()
    events = Events()
    options = {"heartbeat_interval": 0.3, "heartbeat_timeout": 0.6, "connect_timeout": 1.0, **FAST_RETRY}
    client = Client(chat_url(server, "frozen"), **options, **events.callbacks())
    first_id = await client.connect()
    server.freeze()
    try:
        closed = await events.wait(lambda e: isinstance(e, Closed))
        assert (closed.code, closed.reason, closed.was_clean, closed.will_reconnect) == (
            1006,
            "heartbeat timeout",
            False,
            True,
        )
        await events.wait(lambda e: isinstance(e, Reconnecting) and e.reason == "connect timeout")
    finally:
        server.thaw()
    connected = await events.wait(lambda e: isinstance(e, Connected) and e.reconnect)
    assert connected.id != first_id
    assert await client.invoke("rpc.ping") == "pong"
    await client.close()


def test_the_client_works_in_a_process_without_django_settings(demo_server: DaphneProcess) -> None:
    """A plain Python process (no DJANGO_SETTINGS_MODULE) imports wsmanager.client (the re-export of
    wsmanager_client for code that has the server installed) and chats."""
    script = textwrap.dedent(
        f"""
        import asyncio, json, os
        from django.conf import settings
        import wsmanager.client
        from wsmanager.client import connect

        async def main():
            async with connect({chat_url(demo_server, "plain", "?name=plain")!r}) as client:
                return client.id, await client.invoke("who")

        sid, who = asyncio.run(main())
        print(json.dumps({{
            "id": sid,
            "who": who,
            "configured": settings.configured,
            "env": "DJANGO_SETTINGS_MODULE" in os.environ,
            "module": wsmanager.client.__file__,
        }}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(ROOT)
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["who"] == [{"id": report["id"], "name": "plain"}]
    assert (report["configured"], report["env"]) == (False, False)
    assert report["module"].startswith(str(ROOT / "wsmanager"))
