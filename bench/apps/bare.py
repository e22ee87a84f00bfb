"""(a) Bare Channels, the way its docs teach: consumers, groups, ``self.send``.

WebSocket routes (behind ``AllowedHostsOriginValidator(AuthMiddlewareStack(...))``,
the tutorial's stack):

* ``ws/echo/``: sends every text frame back.
* ``ws/rpc/``: JSON-RPC 2.0 by hand: ``json.loads``, look the method up,
  ``json.dumps`` the response.
* ``ws/room/<room>/``: joins group ``room`` (unless ``?listen=0``); a text frame
  is ``group_send`` to the group; members get it with ``self.send``.
* ``ws/direct/``: stores its channel name in Django's cache under a fresh key
  and sends ``{"id": key}`` first; ``POST /send/<key>`` looks the channel up
  and ``channel_layer.send``s the body to it.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ["BENCH_URLCONF"] = __name__

from django.core.asgi import get_asgi_application

django_app = get_asgi_application()

from asgiref.sync import async_to_sync  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


class EchoConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data, bytes_data=bytes_data)


def echo(text: str) -> str:
    return text


METHODS = {"echo": echo}


class RpcConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """The same decode, dispatch and encode a JSON-RPC server needs, written by hand."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            request = json.loads(text_data or "")
        except ValueError:
            error = {"code": -32700, "message": "Parse error"}
            await self.send(text_data=json.dumps({"jsonrpc": "2.0", "error": error, "id": None}))
            return
        method = METHODS.get(request.get("method"))
        if method is None:
            error = {"code": -32601, "message": "Method not found"}
            reply: dict[str, Any] = {"jsonrpc": "2.0", "error": error, "id": request.get("id")}
        else:
            result = method(*request.get("params", []))
            reply = {"jsonrpc": "2.0", "result": result, "id": request.get("id")}
        await self.send(text_data=json.dumps(reply, separators=(",", ":")))


class RoomConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        if b"listen=0" not in self.scope["query_string"]:
            self.groups = [self.room]  # left by the base class on disconnect
            await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.channel_layer.group_send(self.room, {"type": "room.message", "text": text_data})

    async def room_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class DirectConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    async def connect(self) -> None:
        self.key = secrets.token_urlsafe(16)
        await cache.aset(f"ws:{self.key}", self.channel_name, timeout=3600)
        await self.accept()
        await self.send(text_data=json.dumps({"id": self.key}))

    async def disconnect(self, code: int) -> None:
        await cache.adelete(f"ws:{self.key}")

    async def direct_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


@csrf_exempt
def send(request: HttpRequest, key: str) -> HttpResponse:
    channel_name = cache.get(f"ws:{key}")
    if channel_name is None:
        return HttpResponse(status=404)
    layer = get_channel_layer()
    async_to_sync(layer.send)(channel_name, {"type": "direct.message", "text": request.body.decode()})
    return HttpResponse(status=202)


urlpatterns = [path("send/<str:key>", send)]

websocket_urlpatterns = [
    path("ws/echo/", EchoConsumer.as_asgi()),
    path("ws/rpc/", RpcConsumer.as_asgi()),
    path("ws/room/<str:room>/", RoomConsumer.as_asgi()),
    path("ws/direct/", DirectConsumer.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        "http": django_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
