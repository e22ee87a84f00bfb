"""ASGI app for the stream tests: ``daphne tests.e2e.streams_app:application``.

The demo's pages over HTTP, and one handler on ``/ws/streams/`` whose ``count(n, name)`` streams ``0 .. n-1``
and keeps, per name, in this process: how many items its generator produced
and whether its ``finally`` ran. ``report(name)`` reads them and
``until_closed(name)`` waits (bounded) for the ``finally``, so the tests see
the generator's side from any socket without timing anything. ``digest``
reads an upload of text chunks and answers their count, size and SHA-256.
``/ws/streams-tight/`` is the same handler with ``stream_credit`` 4 and ``max_stream_credit`` 16,
``/ws/streams-wide/`` with ``max_stream_credit`` 1000.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, TypeVar

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_chat.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from wsmanager import RpcHandler, route, rpc, websocket_app  # noqa: E402

T = TypeVar("T")

#: Per stream name: items produced, and the event its ``finally`` sets.
PRODUCED: dict[str, int] = {}
CLOSED: dict[str, asyncio.Event] = {}


def _closed(name: str) -> asyncio.Event:
    return CLOSED.setdefault(name, asyncio.Event())


def _counted(name: str, items: Iterable[T]) -> Iterator[T]:
    """``items``, counted in ``PRODUCED[name]`` as each is produced; ``name``'s event set
    when closed (the stream's end, or its cancellation closing the generator that reads this)."""
    PRODUCED[name] = 0
    try:
        for item in items:
            PRODUCED[name] += 1
            yield item
    finally:
        _closed(name).set()


class StreamHandler(RpcHandler):
    handler_name = "e2e-streams"
    rate_limit = None

    @rpc
    async def count(self, n: int, name: str) -> AsyncIterator[int]:
        with contextlib.closing(_counted(name, range(n))) as items:
            for i in items:
                yield i

    @rpc
    async def digest(self, chunks: AsyncIterator[str]) -> dict[str, Any]:
        """An upload: how many chunks and characters arrived, and their SHA-256."""
        sha, count, size = hashlib.sha256(), 0, 0
        async for chunk in chunks:
            sha.update(chunk.encode())
            count += 1
            size += len(chunk)
        return {"chunks": count, "size": size, "sha256": sha.hexdigest()}

    @rpc
    async def blobs(self, n: int, size: int, name: str) -> AsyncIterator[str]:
        """Like ``count``, but each item is a string of ``size`` characters."""
        with contextlib.closing(_counted(name, ["x" * size] * n)) as blobs:
            for blob in blobs:
                yield blob

    @rpc
    async def report(self, name: str) -> dict[str, Any]:
        return {"produced": PRODUCED.get(name), "closed": _closed(name).is_set()}

    @rpc
    async def until_closed(self, name: str) -> bool:
        """True once the stream's ``finally`` ran (False after 20 s: the test fails, never hangs)."""
        try:
            await asyncio.wait_for(_closed(name).wait(), 20)
        except TimeoutError:
            return False
        return True


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,  # the demo's pages: an origin for the browser tests
        "websocket": websocket_app(
            [
                route("ws/streams/", StreamHandler),
                # credit settings other than the clients' defaults (a window past twice the cap)
                route("ws/streams-tight/", StreamHandler, stream_credit=4, max_stream_credit=16),
                # credit far past what TCP buffers hold: only the backlog wait bounds a stalled reader
                route("ws/streams-wide/", StreamHandler, max_stream_credit=1000),
            ],
            auth=False,
        ),
    }
)
