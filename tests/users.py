"""``?user=<pk>`` logs a socket in: a stand-in for ``AuthMiddlewareStack`` and a session.

The scope gets an unsaved Django ``User`` with that primary key, which is
all wsmanager reads (``is_authenticated`` and ``pk``); no query means no user.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from django.contrib.auth.models import User

__all__ = ["with_user"]


def with_user(app: Any) -> Any:
    """Wrap an ASGI app so that ``?user=<pk>`` puts ``User(pk=<pk>)`` in the scope."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        pk = (parse_qs(scope.get("query_string", b"").decode()).get("user") or [None])[0]
        if pk is not None:
            scope = {**scope, "user": User(pk=int(pk), username=f"user{pk}")}
        return await app(scope, receive, send)

    return asgi
