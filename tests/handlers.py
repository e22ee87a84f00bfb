"""Small handlers for the in-process tests, and the ASGI app that routes them.

Handlers report what they observed in :data:`events` (cleared by
:func:`reset`, which the test modules call before each test) and block on
named :func:`gate` events that a test opens when it wants a call to finish.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from wsmanager import (
    DeliveryError,
    RegistryUnavailable,
    RejectConnection,
    RpcError,
    RpcHandler,
    WebSocketHandler,
    route,
    rpc,
)
from wsmanager import websocket_app as _websocket_app

#: What handlers saw, in order (tuples whose first item names the event).
events: list[Any] = []
_gates: dict[str, asyncio.Event] = {}

ALLOWED_ORIGIN = (b"origin", b"http://localhost:8000")


def gate(key: str) -> asyncio.Event:
    """The event named ``key`` (created on first use)."""
    return _gates.setdefault(key, asyncio.Event())


_barriers: dict[str, threading.Barrier] = {}


def barrier(key: str) -> threading.Barrier:
    """A barrier for two threads named ``key`` (created on first use)."""
    return _barriers.setdefault(key, threading.Barrier(2))


def reset() -> None:
    """Forget every recorded event, gate and barrier."""
    events.clear()
    _gates.clear()
    _barriers.clear()


# -- raw frames ---------------------------------------------------------------------


class EchoHandler(WebSocketHandler):
    """Sends every frame back as it came: text as text, binary as binary."""

    async def on_receive(self, message: str | bytes) -> None:
        await self.send_frame(message)


class SmallEchoHandler(EchoHandler):
    """An echo handler that accepts frames of at most 1,000 bytes."""

    max_message_size = 1000


class HelloHandler(EchoHandler):
    """From ``on_connect``, sends its id, whether it is registered, and its route."""

    async def on_connect(self) -> None:
        hello = {
            "id": self.id,
            "registered": await self.manager.aexists(self.id),
            "path_kwargs": dict(self.info.path_kwargs),
            "user_id": self.info.user_id,
        }
        await self.send_frame(json.dumps(hello))


class QueueingHandler(WebSocketHandler):
    """Sends frames of every kind, by every route, before the handshake completes."""

    async def on_connect(self) -> None:
        await self.send_frame("one")
        await self.send_frame(b"two")
        await self.manager.asend(self.id, "three")
        await self.manager.asend(self.id, json={"n": 4})
        await self.send_frame("five")


class FloodHandler(WebSocketHandler):
    """Queues ``n`` frames (a path argument) before the handshake completes."""

    async def on_connect(self) -> None:
        for i in range(int(self.info.path_kwargs["n"])):
            await self.send_frame(str(i))


class RecordingHandler(EchoHandler):
    """Records ``on_disconnect``; the frame ``close-then-send`` closes and sends."""

    async def on_receive(self, message: str | bytes) -> None:
        if message == "close-then-send":
            await self.close(4000, "done")
            events.append(("late send", await self.send_frame("late")))
        else:
            await super().on_receive(message)

    async def on_disconnect(self, code: int) -> None:
        registered = await self.manager.aexists(self.id)
        events.append(("disconnect", self.id, code, registered, self.state))


class RefusingHandler(WebSocketHandler):
    """Refuses in ``on_connect`` the way the path says: false, reject, reject-code, raise."""

    async def on_connect(self) -> bool | None:
        how = self.info.path_kwargs["how"]
        events.append(("connect", self.id, await self.manager.aexists(self.id)))
        await self.send_frame("queued before the refusal")
        if how == "false":
            return False
        if how == "reject":
            raise RejectConnection("not you")
        if how == "reject-code":
            raise RejectConnection("not you", code=4003)
        if how == "raise":
            raise RuntimeError("on_connect failed")
        return None

    async def on_disconnect(self, code: int) -> None:
        events.append(("disconnect", self.id, code))


class FailingHandler(WebSocketHandler):
    """``on_receive`` raises; the base ``on_error`` closes with 1011."""

    async def on_receive(self, message: str | bytes) -> None:
        events.append(("receive", self.id))
        raise RuntimeError("on_receive failed")


class StrictOriginHandler(EchoHandler):
    """Only pages of https://example.com:8443 may connect."""

    allowed_origins = ["https://example.com:8443"]


# -- JSON-RPC ----------------------------------------------------------------------------


class CalcHandler(RpcHandler):
    """A JSON-RPC handler with exposed methods of every kind."""

    max_batch_size = 10

    @rpc
    async def add(self, a: int, b: int) -> int:
        return a + b

    @rpc
    def multiply(self, a: float, b: float) -> float:
        """A plain ``def``: runs in the sync thread."""
        return a * b

    @rpc
    def thread_name(self) -> str:
        return threading.current_thread().name

    @rpc
    async def greet(self, name: str, punctuation: str = "!") -> str:
        return f"Hello, {name}{punctuation}"

    @rpc
    async def total(self, values: list[int]) -> int:
        return sum(values)

    @rpc
    async def describe(self, value: int | None = None, tags: dict[str, str] | None = None) -> Any:
        return {"value": value, "tags": tags}

    @rpc(name="math.negate")
    async def negate(self, x: float) -> float:
        return -x

    @rpc
    async def record(self, value: Any) -> Any:
        events.append(("record", value))
        return value

    @rpc(name="fail.rpc")
    async def fail_rpc(self) -> None:
        raise RpcError(4000, "Nope", {"why": "because"})

    @rpc(name="fail.value")
    async def fail_value(self) -> None:
        raise ValueError("secret detail 1234")

    @rpc(thread_sensitive=False)
    def meet(self, key: str, wait: float) -> str:
        """Blocks in a pool thread until a second ``meet(key)`` arrives (or ``wait`` passes)."""
        barrier(key).wait(timeout=wait)
        return "met"

    @rpc(name="meet.serially")
    def meet_serially(self, key: str, wait: float) -> str:
        """The same in the one sync thread: a second call can only start once this one ends."""
        barrier(key).wait(timeout=wait)
        return "met"

    @rpc(name="fail.sync")
    def fail_sync(self) -> None:
        raise KeyError("secret detail 5678")

    @rpc(name="fail.registry")
    async def fail_registry(self) -> None:
        raise RegistryUnavailable("secret detail: Redis at 10.0.0.9 down")

    @rpc(name="fail.delivery")
    async def fail_delivery(self) -> None:
        raise DeliveryError("secret detail: channel layer down")

    @rpc
    async def not_json(self) -> Any:
        return {"a set": {1, 2}}

    @rpc
    async def hold(self, key: str) -> str:
        """Waits until the test opens gate ``key``; records being cancelled."""
        try:
            await gate(key).wait()
        except asyncio.CancelledError:
            events.append(("cancelled", key))
            gate(f"{key}.cancelled").set()
            raise
        return key

    @rpc
    async def ask_client(self, value: int) -> Any:
        """Invokes ``double`` on the calling client and returns its answer."""
        return await self.invoke("double", value, timeout=2)

    def helper(self) -> str:
        """Public but not exposed."""
        return "secret"

    async def _private(self) -> str:
        return "secret"

    async def on_disconnect(self, code: int) -> None:
        """A hook: overridden here, never callable by clients."""
        events.append(("disconnect", self.id, code))


class BusyHandler(CalcHandler):
    """At most two calls may wait or run per socket."""

    max_pending_calls = 2


class ParallelHandler(CalcHandler):
    """Two calls of one socket may run at once."""

    max_concurrent_calls = 2


class WelcomeHandler(CalcHandler):
    """Sends a notification from ``on_connect`` (queued before the handshake)."""

    async def on_connect(self) -> None:
        await self.send_notification("welcome", text="hi")


websocket_urlpatterns = [
    route("ws/echo/", EchoHandler),
    route("ws/two-per-address/", EchoHandler, max_connections_per_address=2),
    route("ws/small/", SmallEchoHandler),
    route("ws/hello/", HelloHandler),
    route("ws/queue/", QueueingHandler),
    route("ws/flood/<int:n>/", FloodHandler),
    route("ws/record/", RecordingHandler),
    route("ws/refuse/<str:how>/", RefusingHandler),
    route("ws/fail/", FailingHandler),
    route("ws/strict/", StrictOriginHandler),
    route("ws/calc/", CalcHandler),
    route("ws/busy/", BusyHandler),
    route("ws/parallel/", ParallelHandler),
    route("ws/welcome/", WelcomeHandler),
    route("ws/rooms/<str:room>/<int:seat>/", HelloHandler),
    route(r"^ws/re/(?P<slug>[a-z]+)/(?P<num>[0-9]{2})/$", HelloHandler),
]

#: The application every in-process test connects to.
application = _websocket_app(websocket_urlpatterns, auth=False)
