"""``wsmanager.ops.lifespan``: the ASGI lifespan app starts the node, and drains and stops it.
On each real server: tests/e2e/test_servers.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wsmanager.node import get_node
from wsmanager.ops import drain, lifespan
from wsmanager.ops.lifespan import lifespan_app


class Lifespan:
    """A server's side of the lifespan protocol."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        self.task = asyncio.ensure_future(lifespan_app(scope, self.inbox.get, self.sent.put))

    async def say(self, kind: str) -> dict[str, Any]:
        await self.inbox.put({"type": kind})
        return await asyncio.wait_for(self.sent.get(), 5)


async def test_startup_starts_the_node_and_shutdown_drains_and_stops_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed: list[bool] = []
    drained: list[float | None] = []
    monkeypatch.setattr(drain, "install", lambda: installed.append(True) or True)

    async def fake_drain(period: float | None = None, **kwargs: Any) -> int:
        drained.append(period)
        return 0

    monkeypatch.setattr(drain, "drain", fake_drain)
    server = Lifespan()
    assert await server.say("lifespan.startup") == {"type": "lifespan.startup.complete"}
    node = get_node()
    assert node.id.startswith("wsmanager.node") and node._loop is asyncio.get_running_loop()
    assert installed == [True]
    assert await server.say("lifespan.shutdown") == {"type": "lifespan.shutdown.complete"}
    assert drained == [0.0]
    assert node._loop is None  # stopped
    await asyncio.wait_for(server.task, 5)


async def test_a_failing_startup_answers_startup_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> bool:
        raise RuntimeError("no signals here")

    monkeypatch.setattr(drain, "install", broken)
    server = Lifespan()
    reply = await server.say("lifespan.startup")
    assert reply["type"] == "lifespan.startup.failed"
    assert "no signals here" in reply["message"]
    await asyncio.wait_for(server.task, 5)


async def test_other_scopes_are_refused() -> None:
    with pytest.raises(ValueError, match="lifespan scopes"):
        await lifespan.lifespan_app({"type": "http"}, None, None)
