"""ASGI app for the per-server tests (tests/e2e/test_servers.py): close codes on every server.

WebSocket routes:

* ``/ws/close/?refuse=<code>``: an RPC handler; with ``refuse`` its
  ``on_connect`` raises ``RejectConnection("refused here", code)``. Its
  ``close_me(code, reason)`` method closes the calling socket with that code
  and reason; ``dropped_by_daphne`` is what the adapter fixes on daphne.
* ``/ws/small/``: frames of at most :data:`SMALL_FRAME` bytes (over: 1009).
* ``/ws/fail/``: a plain handler whose ``on_receive`` raises on ``"boom"``
  (``on_error`` then closes with 1011) and echoes anything else.
* ``/ws/capped/?user=<id>``: two sockets per user (the third: 4429).
* ``/ws/rated/``: a burst of 1 message refilled at one an hour (no token comes back
  within a test, however slow the machine), 3 strikes (then 1008).
* ``/ws/chat/<room>/``: the demo's ChatHandler.

HTTP goes to the demo's Django views; the ``lifespan`` key is served by
:func:`wsmanager.ops.lifespan.lifespan_app` like the demo's.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_chat.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from demo_chat.routing import websocket_urlpatterns as demo_routes  # noqa: E402
from wsmanager import (  # noqa: E402
    RejectConnection,
    RpcHandler,
    WebSocketHandler,
    route,
    rpc,
    servers,
    websocket_app,
)
from wsmanager.ops import drain  # noqa: E402
from wsmanager.ops.lifespan import lifespan_app  # noqa: E402

SMALL_FRAME = 1024


class CloseHandler(RpcHandler):
    handler_name = "servers.close"
    rate_limit = None

    async def on_connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        if query.get("refuse"):
            raise RejectConnection("refused here", int(query["refuse"][0]))

    @rpc
    async def close_me(self, code: int, reason: str) -> None:
        await self.close(code, reason)

    @rpc
    async def server(self) -> str:
        """The server the adapter detected for this socket (see wsmanager.servers)."""
        return servers.server_name(self.base_send)

    @rpc
    async def ticks(self, count: int) -> dict[str, Any]:
        """Notify this socket ``count`` times ("tick", 0..count-1); whether the writer
        has the server's synchronous write, and how many frames it wrote."""
        direct = self.writer.direct
        written = 0

        def counted(message: dict[str, Any]) -> bool:
            nonlocal written
            assert direct is not None
            took = direct(message)  # an exception here is the adapter's bug: the writer falls back
            written += took
            return took

        if direct is not None:
            self.writer.direct = counted
        try:
            for i in range(count):
                await self.send_notification("tick", i)
        finally:
            self.writer.direct = direct
        return {"direct": direct is not None, "written": written}


class SmallHandler(RpcHandler):
    handler_name = "servers.small"
    rate_limit = None
    max_message_size = SMALL_FRAME


class FailingHandler(WebSocketHandler):
    handler_name = "servers.fail"
    rate_limit = None

    async def on_receive(self, message: str | bytes) -> None:
        if message == "boom":
            raise RuntimeError("boom, as the test asked")
        await self.send_frame(message)


class QueryUser:
    is_authenticated = True

    def __init__(self, pk: str) -> None:
        self.pk = pk


class CappedHandler(RpcHandler):
    handler_name = "servers.capped"
    rate_limit = None
    max_connections_per_user = 2

    async def authorize(self) -> bool:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        if query.get("user"):
            self.scope["user"] = QueryUser(query["user"][0])
        return True


class RatedHandler(RpcHandler):
    handler_name = "servers.rated"
    rate_limit = (1 / 3600, 1.0)
    rate_limit_strikes = 3


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_app(
            [
                route("ws/close/", CloseHandler),
                route("ws/small/", SmallHandler),
                route("ws/fail/", FailingHandler),
                route("ws/capped/", CappedHandler),
                route("ws/rated/", RatedHandler),
                *demo_routes,
            ]
        ),
        "lifespan": lifespan_app,
    }
)
drain.install()
