"""A frame the server cannot write closes the socket and releases it (real daphne).

daphne refuses to send a message over its own 1 MiB limit. Before, the write
failed silently: no close, the socket stayed in the registry and its room,
and a client without a heartbeat hung. Now the socket is closed with 1011
"write failed", leaves the registry and its groups at once, and the drop is
counted; the rest of the room keeps being served.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import websockets

from tests.e2e.client import Peer
from tests.e2e.test_hostile_input import server, settled, state, url

pytestmark = pytest.mark.e2e

__all__ = ["server"]


async def close_of(ws: websockets.ClientConnection, timeout: float = 10.0) -> tuple[int | None, str]:
    """Read until the connection closes; the close frame's code and reason."""
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    rcvd = ws.close_exc.rcvd
    return (None, "") if rcvd is None else (int(rcvd.code), rcvd.reason)


async def test_a_frame_too_big_for_the_server_closes_1011_and_releases_the_socket(
    server: object, server_kind: str
) -> None:
    if server_kind != "daphne":
        pytest.skip("only daphne refuses to write a frame (over its 1 MiB limit); the others send it")
    await settled(server)  # type: ignore[arg-type]
    before = (await state(server))["stats"].get("dropped_write_failed", 0)  # type: ignore[arg-type]
    victim = await Peer.open(url(server, "lenient", "toobig"))  # type: ignore[arg-type]
    sender = await Peer.open(url(server, "lenient", "toobig"))  # type: ignore[arg-type]
    # One notification of 1.3 MB to the room: more than daphne will write.
    await sender.send_raw('{"jsonrpc":"2.0","method":"flood","params":[1,1300000],"id":1}')
    assert await close_of(victim.ws) == (1011, "write failed")
    assert await close_of(sender.ws) == (1011, "write failed")
    after = await settled(server)  # type: ignore[arg-type]  # nobody left in the registry
    assert after["stats"].get("dropped_write_failed", 0) >= before + 2
    fresh = await Peer.open(url(server, "lenient", "toobig"))  # type: ignore[arg-type]
    assert await fresh.call("members") == [fresh.id]  # no ghost left in the room
    await fresh.close()
