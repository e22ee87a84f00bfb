"""wsmanager_client's connection recovery against a real daphne serving the demo (recovery on).

The client talks to daphne through a TCP proxy the test controls: ``cut()`` drops the
connection at once on both sides (no close frame: the client sees 1006, the server a lost
connection) and refuses new ones until ``restore()``. Meanwhile the demo's HTTP API and a
second client address the dropped socket; the client comes back with its id and gets each
missed notification once, in order, before live traffic. ``stall()`` makes the connection
half-open instead: the client's heartbeat drops it and resumes while the server still holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from tests import redis_support
from tests.e2e.client import chat_url, cluster_env, http, running
from tests.servers import DaphneProcess
from wsmanager_client import Client, Closed, Recovered, RecoveryFailed, State, connect

pytestmark = pytest.mark.e2e
redis_url = redis_support.redis_url

WAIT = 20.0  # a bound on each wait, so that a failure shows instead of hanging; never a threshold
FAST_RETRY = {"reconnect_delay": 0.2, "reconnect_max_delay": 0.4, "heartbeat_interval": None}


class CuttableProxy:
    """A loopback TCP proxy to ``port``; :meth:`cut` drops every connection through it without a word.

    ``target`` may be changed at any time: new connections go to the new port.
    :meth:`stall` makes the current connections a black hole instead (half-open: nobody is told).
    """

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self.refusing = False
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._stalled: set[asyncio.StreamWriter] = set()

    async def start(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Abort every proxied connection (both sides) and refuse new ones until :meth:`restore`."""
        self.refusing = True
        for pair in list(self._pairs):
            for writer in pair:
                writer.transport.abort()
        self._pairs.clear()

    def stall(self) -> None:
        """From now on, drop whatever the current connections carry, and keep them open."""
        for pair in self._pairs:
            self._stalled.update(pair)

    def restore(self) -> None:
        self.refusing = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            self._stalled.difference_update(pair)
            for side in pair:
                side.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if writer in self._stalled:
                    continue
                writer.write(data)
                await writer.drain()


class Inbox:
    """What one client got: its ``message`` texts and its events, with a wait for a condition."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.events: list[Any] = []
        self.methods: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()

    def message(self, **params: Any) -> None:
        self.texts.append(params["text"])
        self._changed.set()

    def event(self, event: Any) -> None:
        self.events.append(event)
        self._changed.set()

    def presence(self, method: str) -> Callable[..., None]:
        def record(**params: Any) -> None:
            self.methods.append((method, params))
            self._changed.set()

        return record

    def callbacks(self) -> dict[str, Callable[[Any], None]]:
        names = ("on_connected", "on_reconnected", "on_closed", "on_recovered", "on_recovery_failed")
        return dict.fromkeys(names, self.event)

    async def until(self, check: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not check():
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def demo() -> Iterator[Callable[..., DaphneProcess]]:
    started: list[DaphneProcess] = []

    def start(window: float = 60.0) -> DaphneProcess:
        env = {"DEMO_DB": ":memory:", "WSMANAGER_RECOVERY_WINDOW": str(window), "WSMANAGER_LOG": "WARNING"}
        server = DaphneProcess(env=env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
async def proxy_to() -> AsyncIterator[Callable[[int], Any]]:
    proxies: list[CuttableProxy] = []

    async def start(port: int) -> CuttableProxy:
        proxy = await CuttableProxy(port).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        await proxy.close()


def ann_client(proxy: CuttableProxy, room: str, inbox: Inbox, **options: Any) -> Client:
    handlers = {"message": inbox.message}
    url = f"{proxy.ws_url}/ws/chat/{room}/?name=ann"
    return Client(url, handlers=handlers, **inbox.callbacks(), **{**FAST_RETRY, **options})


async def post(server: DaphneProcess, path: str, text: str) -> None:
    response = await http("POST", server, path, json={"text": text})
    assert response.status_code == 202, response.text


async def test_a_cut_connection_resumes_with_its_id_and_every_missed_message_once_in_order(
    demo: Callable[..., DaphneProcess], proxy_to: Callable[[int], Any]
) -> None:
    """Room messages, an API message to the id, a whisper and an API room message during the cut."""
    server = demo()
    proxy = await proxy_to(server.port)
    room = "recover"
    ann_inbox, bob_inbox = Inbox(), Inbox()
    ann = ann_client(proxy, room, ann_inbox)
    bob_handlers = {method: bob_inbox.presence(method) for method in ("joined", "left", "presence")}
    await ann.connect()
    ann_id = ann.id
    assert ann_id is not None
    async with connect(chat_url(server, room, "?name=bob"), handlers=bob_handlers, **FAST_RETRY) as bob:
        await bob.invoke("send", "before")
        await ann_inbox.until(lambda: ann_inbox.texts == ["before"])

        proxy.cut()
        await ann_inbox.until(lambda: any(isinstance(e, Closed) for e in ann_inbox.events))
        assert ann.state is not State.OPEN
        await bob.invoke("send", "group 1")
        await post(server, f"/api/sockets/{ann_id}/messages", "by id")
        await bob.invoke("whisper", ann_id, "whisper")
        await post(server, f"/api/rooms/{room}/messages", "room api")
        await bob.invoke("send", "group 2")
        await asyncio.sleep(0.5)  # a few refused attempts meanwhile
        assert ann_inbox.texts == ["before"]

        proxy.restore()
        await ann_inbox.until(
            lambda: any(isinstance(e, Recovered | RecoveryFailed) for e in ann_inbox.events)
        )
        await bob.invoke("send", "live")
        await ann_inbox.until(lambda: "live" in ann_inbox.texts)
        await asyncio.sleep(0.3)  # anything sent twice would arrive by now

        missed = ["group 1", "by id", "whisper", "room api", "group 2"]
        assert ann_inbox.texts == ["before", *missed, "live"]
        assert ann.id == ann_id
        recovered = [e for e in ann_inbox.events if isinstance(e, Recovered | RecoveryFailed)]
        assert len(recovered) == 1 and isinstance(recovered[0], Recovered), ann_inbox.events
        assert recovered[0].id == ann_id and recovered[0].replayed >= len(missed)
        # Bob never saw ann leave or join again.
        assert [m for m in bob_inbox.methods if ann_id in json.dumps(m[1])] == []
    await ann.close()


async def test_a_cut_longer_than_the_window_gives_a_fresh_socket_and_says_so(
    demo: Callable[..., DaphneProcess], proxy_to: Callable[[int], Any]
) -> None:
    """Window 1 s, cut for 2 s: the client does not ask, gets a new id, and reports "expired"."""
    server = demo(window=1.0)
    proxy = await proxy_to(server.port)
    inbox = Inbox()
    ann = ann_client(proxy, "expire", inbox)
    first = await ann.connect()
    proxy.cut()
    await asyncio.sleep(2.0)
    proxy.restore()
    await inbox.until(lambda: any(isinstance(e, RecoveryFailed) for e in inbox.events))
    failed = next(e for e in inbox.events if isinstance(e, RecoveryFailed))
    assert failed == RecoveryFailed("expired", first, ann.id) and ann.id != first
    assert not any(isinstance(e, Recovered) for e in inbox.events)
    await ann.close()


async def test_a_forged_token_gets_a_fresh_socket_told_by_the_server(
    demo: Callable[..., DaphneProcess], proxy_to: Callable[[int], Any]
) -> None:
    """The client asks with its id and a wrong secret: recovered false, a reason, a new id."""
    server = demo()
    proxy = await proxy_to(server.port)
    inbox = Inbox()
    ann = ann_client(proxy, "forged", inbox)
    first = await ann.connect()
    proxy.cut()
    await inbox.until(lambda: any(isinstance(e, Closed) for e in inbox.events))
    assert ann._recovery.token is not None and ann._recovery.token.startswith(f"{first}.")
    ann._recovery.token = f"{first}.{'A' * 43}"  # its own id, a secret the server never gave
    proxy.restore()
    await inbox.until(lambda: any(isinstance(e, RecoveryFailed | Recovered) for e in inbox.events))
    failed = next(e for e in inbox.events if isinstance(e, RecoveryFailed | Recovered))
    assert isinstance(failed, RecoveryFailed), inbox.events
    assert failed.reason == "unknown"  # a wrong secret reads as a token the server does not know
    assert (failed.previous_id, failed.id) == (first, ann.id) and ann.id != first
    await ann.close()


@pytest.mark.redis
async def test_a_cut_connection_resumes_on_another_process_after_sigkill_of_its_own(
    redis_url: str, proxy_to: Callable[[int], Any]
) -> None:
    """Two processes on one Redis; ann's is killed while she is cut off; she comes back on the other."""
    env = cluster_env(redis_url, WSMANAGER_RECOVERY_WINDOW="60")
    with running([DaphneProcess(env=env), DaphneProcess(env=env)]) as (first, second):
        proxy = await proxy_to(first.port)
        room = "recover-cluster"
        inbox = Inbox()
        ann = ann_client(proxy, room, inbox)
        await ann.connect()
        ann_id = ann.id
        assert ann_id is not None
        async with connect(chat_url(second, room, "?name=bob"), **FAST_RETRY) as bob:
            await bob.invoke("send", "before")
            await inbox.until(lambda: inbox.texts == ["before"])

            proxy.cut()
            first.kill()  # SIGKILL: the socket's own process says nothing to anyone
            await inbox.until(lambda: any(isinstance(e, Closed) for e in inbox.events))
            await bob.invoke("send", "group")
            await bob.invoke("whisper", ann_id, "whisper")
            await post(second, f"/api/rooms/{room}/messages", "room api")

            proxy.target = second.port
            proxy.restore()
            await inbox.until(lambda: any(isinstance(e, Recovered | RecoveryFailed) for e in inbox.events))
            await bob.invoke("send", "live")
            await inbox.until(lambda: "live" in inbox.texts)
            await asyncio.sleep(0.3)

            assert inbox.texts == ["before", "group", "whisper", "room api", "live"]
            assert ann.id == ann_id
            outcome = [e for e in inbox.events if isinstance(e, Recovered | RecoveryFailed)]
            assert len(outcome) == 1 and isinstance(outcome[0], Recovered), inbox.events
        await ann.close()


async def test_a_half_open_connection_is_dropped_by_the_heartbeat_and_resumed(
    demo: Callable[..., DaphneProcess], proxy_to: Callable[[int], Any]
) -> None:
    """The proxy black-holes the connection: the server still holds it when the client resumes."""
    server = demo()
    proxy = await proxy_to(server.port)
    room = "half-open"
    inbox = Inbox()
    ann = ann_client(proxy, room, inbox, heartbeat_interval=0.5, heartbeat_timeout=0.5)
    await ann.connect()
    ann_id = ann.id
    async with connect(chat_url(server, room, "?name=bob"), **FAST_RETRY) as bob:
        await bob.invoke("send", "before")
        await inbox.until(lambda: inbox.texts == ["before"])
        proxy.stall()
        await bob.invoke("send", "lost 1")
        await bob.invoke("whisper", ann_id, "lost 2")
        await inbox.until(lambda: any(isinstance(e, Recovered | RecoveryFailed) for e in inbox.events))
        closed = next(e for e in inbox.events if isinstance(e, Closed))
        assert (closed.code, closed.reason) == (1006, "heartbeat timeout")
        await bob.invoke("send", "live")
        await inbox.until(lambda: "live" in inbox.texts)
        await asyncio.sleep(0.3)
        assert inbox.texts == ["before", "lost 1", "lost 2", "live"]
        assert ann.id == ann_id
        assert [type(e) for e in inbox.events if isinstance(e, Recovered | RecoveryFailed)] == [Recovered]
    await ann.close()
