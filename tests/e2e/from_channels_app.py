# ruff: noqa: E402  (the blocks of docs/from-channels.md, each with its own imports)
"""A typical Channels chat, as docs/from-channels.md starts from: an
``AsyncJsonWebsocketConsumer`` per room with layer groups and ``group_send``,
and a view that speaks to a room. The regions between ``# [doc:...]`` and
``# [end]`` are the page's blocks, word for word (tests/e2e/test_from_channels.py
checks it). Served with ``DJANGO_SETTINGS_MODULE=tests.e2e.chat_settings``.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.chat_settings")
django_asgi_app = get_asgi_application()

# [doc:channels-consumer]
from channels.generic.websocket import AsyncJsonWebsocketConsumer


class ChatConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.room_group = f"chat_{self.scope['url_route']['kwargs']['room']}"
        await self.channel_layer.group_add(self.room_group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.room_group, self.channel_name)

    async def receive_json(self, content):
        await self.channel_layer.group_send(
            self.room_group, {"type": "chat.message", "text": content["text"]}
        )

    async def chat_message(self, event):  # the "chat.message" events of the group
        await self.send_json({"type": "message", "text": event["text"]})


# [end]


# [doc:channels-view]
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.http import JsonResponse
from django.views.decorators.http import require_POST


@require_POST
def announce(request, room):
    async_to_sync(get_channel_layer().group_send)(
        f"chat_{room}", {"type": "chat.message", "text": request.POST["text"]}
    )
    return JsonResponse({}, status=202)


# [end]


# [doc:channels-routing]
from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

urlpatterns = [path("rooms/<str:room>/announce", announce)]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/chat/<str:room>/", ChatConsumer.as_asgi())]))
        ),
    }
)
# [end]
