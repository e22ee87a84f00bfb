"""A daphne-served app with RPC handlers that exercise the execution model."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_chat.settings")
django.setup()

from wsmanager import (  # noqa: E402
    RpcHandler,
    route,
    rpc,
    websocket_app,
)


class ModelHandler(RpcHandler):
    """Slow calls, calls back into the caller, and the handler's socket count."""

    handler_name = "e2e-model"
    rate_limit = None

    @rpc
    async def sleep(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    @rpc
    async def ask_client(self, value: int) -> Any:
        """Invokes ``double`` on the very client that called, and returns its answer."""
        return await self.invoke("double", value, timeout=5)

    @rpc
    async def echo(self, value: Any) -> Any:
        """Returns ``value`` as it came (``bytes`` too, on a MessagePack socket)."""
        return value

    @rpc
    async def ask_mirror(self, value: Any) -> Any:
        """Invokes ``mirror`` on the calling client with ``value`` and returns its answer."""
        return await self.invoke("mirror", value, timeout=5)

    @rpc
    async def count(self) -> int:
        return await self.manager.acount()

    @rpc
    async def tell(self, socket_id: str, text: str) -> None:
        """Notifies ``note`` to one socket by id (a local one needs no registry)."""
        await self.manager.anotify(socket_id, "note", text)


application = websocket_app(
    [
        route("ws/model/", ModelHandler),
        # For pages of another server (the browser tests' demo): any Origin.
        route("ws/model-any-origin/", ModelHandler, allowed_origins=["*"]),
        # A handler that takes JSON only (MessagePack clients are given no subprotocol).
        route("ws/model-json/", ModelHandler, encodings=("json",)),
        # The same handler refusing permessage-deflate (tests/e2e/test_compression_e2e.py).
        route("ws/model-plain/", ModelHandler, compression=False),
    ],
    auth=False,
)
