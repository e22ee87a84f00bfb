"""(b) python-socketio: ``AsyncServer(async_mode="asgi")`` behind ``socketio.ASGIApp``.

Served by the same daphne as the others; other HTTP paths go to Django, so
``POST /send/<sid>`` is a sync Django view in the same process that calls
``sio.emit(..., to=sid)`` (through ``async_to_sync``, as the other systems'
views do). With ``BENCH_REDIS_URL`` set, ``AsyncRedisManager`` carries emits
between processes.

Events: ``echo_emit`` (emitted back as ``echo``: the echo scenario), ``echo``
(returned as the ack: the RPC scenario), ``broadcast`` (emitted as ``msg`` to
the client's room). The
namespace CONNECT packet may carry ``{"room": name, "listen": bool}``: a
listener enters that room.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ["BENCH_URLCONF"] = __name__

from django.core.asgi import get_asgi_application

django_app = get_asgi_application()

import socketio  # noqa: E402
from asgiref.sync import async_to_sync  # noqa: E402
from django.conf import settings  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

manager = (
    socketio.AsyncRedisManager(settings.REDIS_URL, channel=f"{settings.PREFIX}:sio")
    if settings.REDIS_URL
    else None
)
sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager, cors_allowed_origins="*")
rooms: dict[str, str] = {}  # sid -> room it may broadcast to


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any] | None = None) -> None:
    room = (auth or {}).get("room")
    if room:
        rooms[sid] = room
        if (auth or {}).get("listen", True):
            await sio.enter_room(sid, room)


@sio.event
async def disconnect(sid: str, *args: Any) -> None:
    rooms.pop(sid, None)


@sio.event
async def echo(sid: str, data: str) -> str:
    return data  # the ack's argument


@sio.on("echo_emit")
async def echo_emit(sid: str, data: str) -> None:
    await sio.emit("echo", data, to=sid)


@sio.event
async def broadcast(sid: str, data: str) -> None:
    await sio.emit("msg", data, room=rooms[sid])


@csrf_exempt
def send(request: HttpRequest, sid: str) -> HttpResponse:
    async_to_sync(sio.emit)("direct", request.body.decode(), to=sid)
    return HttpResponse(status=202)


urlpatterns = [path("send/<str:sid>", send)]

application = socketio.ASGIApp(sio, other_asgi_app=django_app)
