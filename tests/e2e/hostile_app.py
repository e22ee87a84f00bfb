"""ASGI app for the hostile-input tests: ``daphne tests.e2e.hostile_app:application``.

WebSocket routes (``<room>``: letters and digits), each a :class:`HostileBase`
subclass with its own registry namespace:

* ``/ws/lenient/<room>/``: no rate limit and frames up to 1 MiB (daphne's own limit),
  so that floods and big frames test the other limits;
* ``/ws/limited/<room>/``: the library's default limits (100 msg/s, burst 200, 50 strikes);
* ``/ws/small/<room>/``: frames of at most :data:`SMALL_FRAME` bytes;
* ``/ws/slow/<room>/``: at most :data:`SLOW_BACKLOG` bytes left unread by the client;
* ``/ws/capped/<room>/?user=<id>``: at most 2 sockets per user (``?user`` stands in for a login);
* ``/ws/chat/<room>/``: the demo's ChatHandler, unchanged.

HTTP: ``GET /hostile/state`` answers ``{"counts": {handler: sockets}, "stats": {...},
"closes": {"<handler> <code>": n}}``: the registry's socket count per handler, this
process's node counters, and the closes the handlers started, by code (what the
server meant to send, whether or not the client got to read it). Everything else
goes to the demo's Django views (``/api/rooms/<room>/sockets``...).

Every token bucket of this process runs on a stopped clock that the tests move
(``POST /test/clock?advance=<seconds>``, tests/e2e/stopped_clock.py): no bucket
refills between two frames, however slowly the machine runs.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_chat.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from demo_chat.routing import websocket_urlpatterns as demo_routes  # noqa: E402
from tests.e2e.stopped_clock import install, with_clock  # noqa: E402
from wsmanager import (  # noqa: E402
    RpcHandler,
    State,
    route,
    rpc,
    websocket_app,
)
from wsmanager.observe import _counters as counters  # noqa: E402

SMALL_FRAME = 4096
LENIENT_FRAME = 1024 * 1024
SLOW_BACKLOG = 256 * 1024
#: Closes started by the handlers of this process: "<handler name> <code>" -> count.
CLOSES: Counter[str] = Counter()


def room_group(room: str) -> str:
    return f"hostile.{room}"


class HostileBase(RpcHandler):
    """Joins its room's group; exposes probes of the registry and a flood."""

    abstract = True

    @property
    def group(self) -> str:
        return room_group(str(self.info.path_kwargs["room"]))

    async def on_connect(self) -> None:
        await self.join(self.group)

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        if self.state is State.OPEN:
            CLOSES[f"{self.handler_name} {code}"] += 1
        await super().close(code, reason)

    @rpc
    async def echo(self, value: Any = None) -> Any:
        return value

    @rpc
    async def nap(self, seconds: float) -> float:
        """Sleep (at most one second): keeps the call queue busy."""
        await asyncio.sleep(min(seconds, 1.0))
        return seconds

    @rpc
    async def blob(self, size: int) -> str:
        """A text of ``size`` characters (at most 4 MiB): a result of any size."""
        return "x" * min(size, 4 * 1024 * 1024)

    @rpc
    async def crash(self) -> None:
        """Raise a RuntimeError (a bug in a method): answered -32603, logged."""
        raise RuntimeError(f"crash on socket {self.id}")

    @rpc
    async def count(self) -> int:
        """Sockets of this handler in the registry (all rooms)."""
        return await self.manager.acount()

    @rpc
    async def members(self) -> list[str]:
        """Socket ids in this socket's room, sorted."""
        return sorted(await self.manager.agroup_members(self.group))

    @rpc
    async def flood_all(self, count: int, size: int) -> int:
        """Notify the room ``count`` times with ``size``-character texts, whoever is lost."""
        text = "x" * size
        for seq in range(count):
            await self.manager.anotify_group(self.group, "blob", seq=seq, text=text)
            await asyncio.sleep(0)
            if seq % 10 == 9:  # keep pace with the caller's own reading, not the others'
                await self.writer.drained()
        return count

    @rpc
    async def flood(self, count: int, size: int) -> dict[str, int]:
        """Notify the room ``count`` times with ``size``-character texts.

        Yields to the event loop after each message, waits every ten for the
        caller's own socket to drain (the caller reads; on servers whose send
        waits, a tight loop would outrun any reader), and stops early once the
        room has lost a member.
        """
        members = len(await self.manager.agroup_members(self.group))
        text = "x" * size
        sent = 0
        for seq in range(count):
            await self.manager.anotify_group(self.group, "blob", seq=seq, text=text)
            sent += 1
            await asyncio.sleep(0)
            if seq % 10 == 9:  # keep pace with the caller's own reading (servers whose send waits)
                await self.writer.drained()
            if seq % 10 == 9 and len(await self.manager.agroup_members(self.group)) < members:
                break
        return {"sent": sent, "members": len(await self.manager.agroup_members(self.group))}


class LenientHandler(HostileBase):
    handler_name = "hostile.lenient"
    rate_limit = None
    max_message_size = LENIENT_FRAME


class LimitedHandler(HostileBase):
    handler_name = "hostile.limited"


class SmallHandler(HostileBase):
    handler_name = "hostile.small"
    rate_limit = None
    max_message_size = SMALL_FRAME


class SlowHandler(HostileBase):
    handler_name = "hostile.slow"
    rate_limit = None
    max_send_backlog = SLOW_BACKLOG


class QueryUser:
    """The user named by ``?user=<id>``, as authenticated as a session user."""

    is_authenticated = True

    def __init__(self, pk: str) -> None:
        self.pk = pk


class CappedHandler(HostileBase):
    handler_name = "hostile.capped"
    rate_limit = None
    max_connections_per_user = 2

    async def authorize(self) -> bool:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        if query.get("user"):
            self.scope["user"] = QueryUser(query["user"][0])
        return True


HANDLERS = (LenientHandler, LimitedHandler, SmallHandler, SlowHandler, CappedHandler)


async def _state() -> dict[str, Any]:
    counts = {handler.handler_name: await handler.manager.acount() for handler in HANDLERS}
    return {"counts": counts, "stats": counters.stats(), "closes": dict(CLOSES)}


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``GET /hostile/state`` here; every other request to Django."""
    if scope["path"] != "/hostile/state":
        await django_asgi_app(scope, receive, send)
        return
    body = json.dumps(await _state()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


ROOM = "(?P<room>[A-Za-z0-9]{1,32})"

install()
application = with_clock(
    ProtocolTypeRouter(
        {
            "http": http_app,
            "websocket": websocket_app(
                [
                    route(rf"^ws/lenient/{ROOM}/$", LenientHandler),
                    route(rf"^ws/limited/{ROOM}/$", LimitedHandler),
                    route(rf"^ws/small/{ROOM}/$", SmallHandler),
                    route(rf"^ws/slow/{ROOM}/$", SlowHandler),
                    route(rf"^ws/capped/{ROOM}/$", CappedHandler),
                    *demo_routes,
                ]
            ),
        }
    )
)
