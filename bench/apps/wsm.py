"""(c) wsmanager: handlers mounted with ``websocket_app`` (auth included, as by default).

* ``ws/echo/``: a ``WebSocketHandler`` whose ``on_receive`` sends the frame back
  (raw frames, the same workload as the bare echo consumer).
* ``ws/rpc/``: an ``RpcHandler`` with ``@rpc echo(text: str) -> str``; its id
  comes in the ``rpc.connected`` notification, and ``POST /send/<id>`` sends
  the body to it with ``BenchRpc.manager.send(id, body)``; ``@rpc count(n)``
  streams the integers below ``n`` (an async generator).
* ``ws/room/<room>/``: an ``RpcHandler`` that joins group ``room`` (unless
  ``?listen=0``); ``broadcast(text)`` notifies the group with
  ``manager.anotify_group``; ``broadcast_data(data)`` likewise, with any JSON value.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ["BENCH_URLCONF"] = __name__

from django.core.asgi import get_asgi_application

django_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

from wsmanager import (  # noqa: E402
    RpcHandler,
    SocketNotFound,
    WebSocketHandler,
    route,
    rpc,
    websocket_app,
)

# The default per-socket rate limit (100 messages/s, bursts of 200) is a
# security default far below what a benchmark sends; bare Channels and
# socket.io have none. It stays on, so its per-message cost is measured, with
# a rate no run reaches.
UNREACHED = (1e9, 1e9)


class BenchBase(WebSocketHandler):
    """Limits a benchmark from one machine would trip: a rate no run reaches, and
    no per-address cap (every benchmark client is 127.0.0.1)."""

    abstract = True
    rate_limit = UNREACHED
    max_connections_per_address = None


class BenchEcho(BenchBase):
    handler_name = "bench.echo"

    async def on_receive(self, message: str | bytes) -> None:
        await self.send_frame(message)


class BenchRpc(RpcHandler, BenchBase):
    handler_name = "bench.rpc"
    max_stream_credit = 1000

    @rpc
    async def echo(self, text: str) -> str:
        return text

    @rpc
    async def count(self, n: int) -> AsyncIterator[int]:
        """Streams 0 to n - 1 (bench.streams_cost)."""
        for i in range(n):
            yield i


class BenchRoom(RpcHandler, BenchBase):
    handler_name = "bench.room"

    async def on_connect(self) -> None:
        if b"listen=0" not in self.scope["query_string"]:
            await self.join(self.info.path_kwargs["room"])

    @rpc
    async def broadcast(self, text: str) -> int:
        return await self.manager.anotify_group(self.info.path_kwargs["room"], "msg", text)

    @rpc
    async def broadcast_data(self, data: Any) -> int:
        """Notifies the group ``msg`` with ``data`` as it came (bench.encodings_cost)."""
        return await self.manager.anotify_group(self.info.path_kwargs["room"], "msg", data)


@csrf_exempt
def send(request: HttpRequest, socket_id: str) -> HttpResponse:
    try:
        BenchRpc.manager.send(socket_id, request.body.decode())
    except SocketNotFound:
        return HttpResponse(status=404)
    return HttpResponse(status=202)


urlpatterns = [path("send/<str:socket_id>", send)]

application = ProtocolTypeRouter(
    {
        "http": django_app,
        "websocket": websocket_app(
            [
                route("ws/echo/", BenchEcho),
                route("ws/rpc/", BenchRpc),
                route("ws/room/<str:room>/", BenchRoom),
            ]
        ),
    }
)
