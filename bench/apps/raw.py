"""(d) The ceiling: a raw ``websockets`` server, no ASGI, no Django, no registry.

``python -m bench.apps.raw --port N`` serves, with the ``websockets``
library's asyncio server alone:

* ``/ws/echo/``: every text frame back;
* ``/ws/rpc/``: JSON-RPC ``echo`` by hand (``json.loads``, ``json.dumps``);
* ``/ws/room/<room>/``: joins the room unless ``?listen=0``; a text frame
  is broadcast to the room with ``websockets.broadcast`` (which writes to
  each connection's transport without waiting, and skips those whose
  buffers are full).

It has no send-by-id view, so the send-by-id scenario leaves it out. This
is what Python and ``websockets`` can do with nothing between them and the
wire: the other systems' fan-out is read against it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve

ROOMS: dict[str, set[ServerConnection]] = {}


async def handle(ws: ServerConnection) -> None:
    request = ws.request
    assert request is not None
    parts = urlsplit(request.path)
    if parts.path == "/ws/echo/":
        async for message in ws:
            await ws.send(message)
    elif parts.path == "/ws/rpc/":
        async for message in ws:
            call: dict[str, Any] = json.loads(message)
            answer = {"jsonrpc": "2.0", "result": call["params"][0], "id": call.get("id")}
            await ws.send(json.dumps(answer, separators=(",", ":")))
    elif parts.path.startswith("/ws/room/"):
        room = ROOMS.setdefault(parts.path.removeprefix("/ws/room/").strip("/"), set())
        listening = "listen=0" not in parts.query
        if listening:
            room.add(ws)
        try:
            async for message in ws:
                broadcast(room, message)
        finally:
            room.discard(ws)
    else:
        await ws.close(1008, "no such path")


async def main(port: int) -> None:
    async with serve(handle, "127.0.0.1", port, max_size=2**20, ping_interval=None):
        print(f"raw websockets server on 127.0.0.1:{port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the raw websockets ceiling server")
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
