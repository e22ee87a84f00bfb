"""Handlers with limits and access checks for tests/test_limits.py and
tests/test_admission.py, their app, and the helpers both use.

Handlers record what they saw in :data:`events`; :func:`client` puts a user
in the scope the way ``AuthMiddlewareStack`` would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from channels.testing import WebsocketCommunicator

from wsmanager import RpcHandler, WebSocketHandler, route, rpc
from wsmanager import websocket_app as _websocket_app

#: What handlers saw, in order (tuples whose first item names the event).
events: list[Any] = []


class FakeUser:
    """A logged-in user as far as wsmanager is concerned: ``is_authenticated`` and ``pk``."""

    def __init__(self, pk: int, *, is_staff: bool = False, is_authenticated: bool = True) -> None:
        self.pk = pk
        self.is_staff = is_staff
        self.is_authenticated = is_authenticated


class EchoBase(WebSocketHandler):
    """Echoes every frame; no rate limit unless a subclass sets one."""

    abstract = True
    rate_limit = None

    async def on_receive(self, message: str | bytes) -> None:
        await self.send_frame(message)


class MembersOnlyHandler(EchoBase):
    """Refuses anonymous users."""

    require_authenticated = True


class AuthorizingHandler(EchoBase):
    """``authorize()`` answers as the path says: yes, no, none (returns None) or raise."""

    async def authorize(self) -> bool:
        how = self.scope["url_route"]["kwargs"]["how"]
        events.append(("authorize", how, self.id, await self.manager.acount()))
        if how == "raise":
            raise RuntimeError("authorize failed")
        if how == "none":
            return None  # type: ignore[return-value]
        return how == "yes"

    async def on_connect(self) -> None:
        events.append(("connect", self.id))


class CappedHandler(EchoBase):
    """At most two sockets per user."""

    max_connections_per_user = 2

    async def on_disconnect(self, code: int) -> None:
        events.append(("disconnect", self.id, code))


class LimitedEchoHandler(EchoBase):
    """3 frames at once, then 1 per second; closed after 5 refusals in a row."""

    rate_limit = (1.0, 3.0)
    rate_limit_strikes = 5


class LimitedRpcHandler(RpcHandler):
    """The same limits for JSON-RPC calls."""

    rate_limit = (1.0, 3.0)
    rate_limit_strikes = 5

    @rpc
    async def echo(self, value: Any = None) -> Any:
        return value


def staff_only(handler: RpcHandler) -> bool:
    """A sync permission check: the scope's user is staff."""
    return bool(getattr(handler.scope.get("user"), "is_staff", False))


async def in_own_room(handler: RpcHandler) -> bool:
    """An async permission check: the room path kwarg is "mine"."""
    await asyncio.sleep(0)
    return handler.info.path_kwargs.get("room") == "mine"


class GuardedHandler(RpcHandler):
    """Methods guarded by a Django permission, a sync callable and an async callable."""

    rate_limit = None

    @rpc(permission="auth.view_user")
    async def list_users(self) -> str:
        events.append(("ran", "list_users"))
        return "users"

    @rpc(permission="auth.view_user")
    def list_users_sync(self) -> str:
        """A plain ``def`` behind a permission (runs in the sync thread)."""
        events.append(("ran", "list_users_sync"))
        return "users"

    @rpc(permission=staff_only)
    async def staff_report(self) -> str:
        events.append(("ran", "staff_report"))
        return "report"

    @rpc(permission=in_own_room)
    async def room_secret(self) -> str:
        events.append(("ran", "room_secret"))
        return "secret"

    @rpc
    async def public(self) -> str:
        return "public"


websocket_urlpatterns = [
    route("ws/members/", MembersOnlyHandler),
    route("ws/authorize/<str:how>/", AuthorizingHandler),
    route("ws/capped/", CappedHandler),
    route("ws/limited-echo/", LimitedEchoHandler),
    route("ws/limited-rpc/", LimitedRpcHandler),
    route("ws/guarded/<str:room>/", GuardedHandler),
]

#: The application the limit tests connect to (no auth middleware: tests set the user).
application = _websocket_app(websocket_urlpatterns, auth=False)


def clean_events() -> Iterator[None]:
    """Fixture body: each test starts with no recorded events."""
    events.clear()
    yield
    events.clear()


def client(path: str, user: Any = None) -> WebsocketCommunicator:
    """A communicator on ``path`` whose scope carries ``user`` (when given)."""
    comm = WebsocketCommunicator(application, path)
    if user is not None:
        comm.scope["user"] = user
    return comm


async def receive_close(comm: WebsocketCommunicator) -> dict[str, Any]:
    """The next message from the app, asserted to be a close."""
    message: dict[str, Any] = await comm.receive_output()
    assert message["type"] == "websocket.close", message
    return message
