"""Handlers with topics for the in-process tests (tests/test_topics.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from wsmanager import RpcHandler, route, topic, websocket_app

#: Set by a test: awaited inside ``initial`` of ``slow.<int:n>`` (to publish meanwhile).
hold: dict[str, Any] = {}


async def own_user(socket: Any, id: int) -> bool:
    user = socket.scope.get("user")
    return user is not None and user.is_authenticated and user.pk == id


def even_only(socket: Any, n: int) -> bool:  # a sync authorize: run in a thread
    return n % 2 == 0


async def room_state(socket: Any, name: str) -> dict[str, Any]:
    return {"room": name, "socket": socket.id}


async def slow_state(socket: Any, n: int) -> str:
    started, release = hold["started"], hold["release"]
    started.set()
    await release.wait()
    return "state"


class TopicHandler(RpcHandler):
    handler_name = "topics-test"
    max_subscriptions = 3
    topics = [
        topic("news"),
        topic("user.<int:id>", authorize=own_user),
        topic("even.<int:n>", authorize=even_only),
        topic("room.<slug:name>", initial=room_state, history_size=3),
        topic("slow.<int:n>", initial=slow_state),
    ]


class PlainHandler(RpcHandler):
    handler_name = "topics-plain"


class RecoverableTopicHandler(RpcHandler):
    handler_name = "topics-recoverable"
    recovery_window = 30.0
    topics = [topic("news")]


application = websocket_app(
    [
        route(r"^ws/topics/$", TopicHandler),
        route(r"^ws/plain/$", PlainHandler),
        route(r"^ws/recoverable/$", RecoverableTopicHandler),
    ]
)

__all__ = ["PlainHandler", "RecoverableTopicHandler", "TopicHandler", "application", "asyncio", "hold"]
