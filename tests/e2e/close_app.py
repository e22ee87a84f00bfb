"""ASGI app for the close tests: ``daphne tests.e2e.close_app:application``.

One recoverable handler on ``/ws/room/<room>/`` (``close.room``): a recovery
window of :data:`WINDOW` seconds, no rate limit, no per-address cap. Each
socket joins its room's group. Any socket may pump another room
(:meth:`RoomHandler.pump`): tasks that notify that room as fast as the event
loop lets them, until :meth:`RoomHandler.stop` or the pumping socket goes
away, so that the members' closes race the server's writes. Probes: a
room's members as the registry sees them (parked ones included), the codes
``on_disconnect`` got, and this process's counters.

Everything else is the demo: its chat on ``/ws/chat/<room>/`` and its views
(``/api/rooms/<room>/sockets``...).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_chat.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from demo_chat.routing import websocket_urlpatterns as demo_routes  # noqa: E402
from wsmanager import (  # noqa: E402
    RpcHandler,
    route,
    rpc,
    websocket_app,
)
from wsmanager.observe import _counters as counters  # noqa: E402

#: The recovery window of the handler, in seconds.
WINDOW = 60.0
#: The codes ``on_disconnect`` got in this process: code -> count.
DISCONNECTS: Counter[int] = Counter()
#: The sockets of this process, by room group (the pump paces itself on them).
ROOMS: dict[str, set[RoomHandler]] = {}
#: Bytes a member may have waiting before the pump waits for it: the pump
#: never outruns a server's writes (granian's awaited ``send`` is the slowest).
PACE = 16 * 1024


def room_group(room: str) -> str:
    return f"close.{room}"


class RoomHandler(RpcHandler):
    handler_name = "close.room"
    rate_limit = None
    max_connections_per_address = None
    recovery_window = WINDOW

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pumps: list[asyncio.Task[None]] = []
        self._pumped = 0

    @property
    def group(self) -> str:
        return room_group(str(self.info.path_kwargs["room"]))

    async def on_connect(self) -> None:
        await self.join(self.group)
        ROOMS.setdefault(self.group, set()).add(self)

    async def on_disconnect(self, code: int) -> None:
        DISCONNECTS[code] += 1
        ROOMS.get(self.group, set()).discard(self)
        self._stop()

    @rpc
    async def pump(self, room: str, tasks: int = 8, size: int = 100, pause: float = 0.0) -> int:
        """Start ``tasks`` tasks (at most 32) that each notify ``room`` ``tick``
        (``size`` characters, at most 4,096) again and again, yielding to the
        event loop between two (for ``pause`` seconds, at most 1); returns how many run."""
        text = "x" * min(size, 4096)
        pause = min(max(pause, 0.0), 1.0)
        for _ in range(min(tasks, 32) - len(self._pumps)):
            task = asyncio.get_running_loop().create_task(self._pump(room_group(room), text, pause))
            self._pumps.append(task)
        return len(self._pumps)

    async def _pump(self, group: str, text: str, pause: float) -> None:
        # A flag as well as the cancellation: a cancellation that lands inside
        # a Redis client's call can be swallowed there.
        while self._pumps:
            await self.manager.anotify_group(group, "tick", text)
            self._pumped += 1
            await asyncio.sleep(pause)
            for member in list(ROOMS.get(group, ())):
                if member.writer.backlog() > PACE:  # ends when the member closes
                    await member.writer.drained(PACE)

    @rpc
    async def stop(self) -> int:
        """Stop the pump; how many notifications it sent."""
        pumps = self._stop()
        for task in pumps:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return self._pumped

    def _stop(self) -> list[asyncio.Task[None]]:
        pumps, self._pumps = self._pumps, []
        for task in pumps:
            task.cancel()
        return pumps

    @rpc
    async def members(self, room: str) -> list[str]:
        """The socket ids of ``room`` in the registry (parked ones included), sorted."""
        return sorted(await self.manager.agroup_members(room_group(room)))

    @rpc
    async def stats(self) -> dict[str, Any]:
        """This process's counters (wsmanager.stats()), the codes ``on_disconnect`` got,
        and how many tasks its event loop holds."""
        return {
            "counters": counters.stats(),
            "disconnects": {str(code): n for code, n in DISCONNECTS.items()},
            "tasks": len(asyncio.all_tasks()),
        }


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_app(
            [
                # The race tests resume many members at once from one address to prove
                # none was parked; the resume rates (issue 21) would refuse them with 1013.
                route(
                    r"^ws/room/(?P<room>[A-Za-z0-9]{1,32})/$",
                    RoomHandler,
                    resume_rate_per_address=None,
                    resume_rate_per_session=None,
                ),
                *demo_routes,
            ]
        ),
    }
)
