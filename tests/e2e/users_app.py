"""A daphne-served app whose sockets belong to users, for per-user calls across processes.

``?user=<pk>`` logs the socket in (``tests.users.with_user``); no query
means anonymous. The RPC methods expose the manager's per-user API to the
test's clients.
"""

from __future__ import annotations

import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_chat.settings")
django.setup()

from tests.users import with_user  # noqa: E402
from wsmanager import (  # noqa: E402
    InvokeTimeout,
    RemoteError,
    RpcHandler,
    route,
    rpc,
    websocket_app,
)


class UserHandler(RpcHandler):
    """Per-user sending, invoking and presence queries, by user primary key."""

    handler_name = "e2e-users"
    rate_limit = None

    @rpc
    async def notify_user(self, pk: int, text: str) -> int:
        return await self.manager.anotify_user(pk, "note", text)

    @rpc
    async def invoke_user(self, pk: int, method: str) -> dict[str, Any]:
        """{socket id: result, or "timeout" / "error <code>"} of every socket of the user."""
        answers = await self.manager.ainvoke_user(pk, method, timeout=5)
        out: dict[str, Any] = {}
        for sid, answer in answers.items():
            if isinstance(answer, InvokeTimeout):
                out[sid] = "timeout"
            elif isinstance(answer, RemoteError):
                out[sid] = f"error {answer.code}"
            else:
                out[sid] = answer
        return out

    @rpc
    async def user_sockets(self, pk: int) -> list[str]:
        return sorted(await self.manager.auser_sockets(pk))

    @rpc
    async def is_online(self, pk: int) -> bool:
        return await self.manager.ais_online(pk)


application = with_user(websocket_app([route("ws/users/", UserHandler)], auth=False))
