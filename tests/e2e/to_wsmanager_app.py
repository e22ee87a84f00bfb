# ruff: noqa: E402  (the blocks of docs/from-channels.md, each with its own imports)
"""The chat of tests/e2e/from_channels_app.py on wsmanager, in the two steps of
docs/from-channels.md: ``ChatHandler`` keeps the Channels app's wire format (its
clients do not change), ``RpcChatHandler`` moves to JSON-RPC. The regions between
``# [doc:...]`` and ``# [end]`` are the page's blocks, word for word.
Served with ``DJANGO_SETTINGS_MODULE=tests.e2e.chat_settings`` and
``CHAT_URLCONF=tests.e2e.to_wsmanager_app``.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.chat_settings")
django_asgi_app = get_asgi_application()

# [doc:wsmanager-handler]
import json

from wsmanager import WebSocketHandler


class ChatHandler(WebSocketHandler):
    handler_name = "chat"

    async def on_connect(self):
        self.room_group = f"chat_{self.info.path_kwargs['room']}"
        await self.join(self.room_group)  # left by itself when the socket closes

    async def on_receive(self, message):
        content = json.loads(message)
        await self.manager.asend_group(self.room_group, json={"type": "message", "text": content["text"]})


# [end]


# [doc:wsmanager-view]
from django.http import JsonResponse
from django.views.decorators.http import require_POST


@require_POST
def announce(request, room):
    delivered = ChatHandler.manager.send_group(
        f"chat_{room}", json={"type": "message", "text": request.POST["text"]}
    )
    return JsonResponse({"delivered": delivered}, status=202)


# [end]


# [doc:wsmanager-rpc-handler]
from wsmanager import RpcHandler, rpc


class RpcChatHandler(RpcHandler):
    handler_name = "chat-rpc"

    async def on_connect(self):
        self.room_group = f"chat_{self.info.path_kwargs['room']}"
        await self.join(self.room_group)

    @rpc(name="send")  # `send` itself is a handler method (raw frames)
    async def say(self, text: str) -> int:
        """Says ``text`` to the room; how many sockets it reached."""
        return await self.manager.anotify_group(self.room_group, "message", text=text)


@require_POST
def announce_rpc(request, room):
    delivered = RpcChatHandler.manager.notify_group(f"chat_{room}", "message", text=request.POST["text"])
    return JsonResponse({"delivered": delivered}, status=202)


# [end]


# [doc:wsmanager-routing]
from channels.routing import ProtocolTypeRouter
from django.urls import path

from wsmanager import route, websocket_app

urlpatterns = [
    path("rooms/<str:room>/announce", announce),
    path("rpc/rooms/<str:room>/announce", announce_rpc),
]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_app(
            [
                route("ws/chat/<str:room>/", ChatHandler),
                route("ws/rpc/chat/<str:room>/", RpcChatHandler),
            ]
        ),
    }
)
# [end]
