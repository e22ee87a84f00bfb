"""(e) The server's floor: the least an ASGI application can do with a WebSocket.

``bench.apps.floor:application`` accepts every WebSocket handshake, sends one
text frame (the size of wsmanager's ``rpc.connected``), then waits for the
disconnect. No Django, no Channels: what uvicorn (or any ASGI server) costs
per handshake and per idle socket before an application adds anything
(``python -m bench.handshakes``).
"""

from __future__ import annotations

from typing import Any

HELLO = '{"jsonrpc":"2.0","method":"rpc.connected","params":{"id":"0123456789abcdef0123456789abcdef"}}'


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": HELLO})
    while (await receive())["type"] != "websocket.disconnect":
        pass
