"""One address cannot open sockets without bound (the demo under a real daphne).

Before, 1,000 anonymous sockets from one address were all accepted. Now the
257th and later sockets from 127.0.0.1 are accepted and closed with 4429 "too
many connections" before anything is registered; sockets from the first 256
keep working, and a slot freed by a close is usable again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
import websockets

from tests.e2e.client import chat_url, http
from tests.servers import DAPHNE_BURST_ARGS, DaphneProcess

pytestmark = pytest.mark.e2e

CAP = 256


@pytest.fixture(scope="module")
def server() -> Iterator[DaphneProcess]:
    proc = DaphneProcess(env={"DEMO_DB": ":memory:"}, extra_args=DAPHNE_BURST_ARGS)
    proc.start()
    yield proc
    proc.stop()


async def first_frame_or_close(url: str) -> tuple[websockets.ClientConnection, int | None]:
    ws = await websockets.connect(url, open_timeout=60)
    try:
        await asyncio.wait_for(ws.recv(), 30)
        return ws, None
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None
        assert closed.rcvd.reason == "too many connections"
        return ws, int(closed.rcvd.code)


async def test_one_address_gets_256_sockets_and_the_rest_are_closed_4429(server: DaphneProcess) -> None:
    # A room each, so that presence notices do not pile up unread.
    urls = iter(chat_url(server, f"crowd{i}") for i in range(1000))
    kept: list[websockets.ClientConnection] = []
    codes: list[int | None] = []
    try:
        for _ in range(6):
            batch = await asyncio.gather(*(first_frame_or_close(next(urls)) for _ in range(50)))
            for ws, code in batch:
                codes.append(code)
                if code is None:
                    kept.append(ws)
        assert codes.count(None) == CAP
        assert codes.count(4429) == 300 - CAP
        stats = (await http("GET", server, "/api/stats")).json()
        assert stats["sockets"] == CAP  # the refused ones left nothing behind
        assert stats["counters"]["refused_handshake"] == 300 - CAP
        await kept.pop().close()
        for _ in range(100):  # until the server has handled the close
            if (await http("GET", server, "/api/stats")).json()["sockets"] < CAP:
                break
            await asyncio.sleep(0.05)
        ws, code = await first_frame_or_close(next(urls))  # the freed slot is usable again
        assert code is None
        kept.append(ws)
    finally:
        for ws in kept:
            with contextlib.suppress(Exception):
                await ws.close()
