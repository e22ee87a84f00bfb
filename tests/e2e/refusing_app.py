"""An ASGI app that refuses every WebSocket handshake with the status, body and content type
that the path and query ask for: ``/status/404/?body=no+such+room&type=text/plain``.

It answers with the ASGI "WebSocket Denial Response" extension
(``websocket.http.response``) where the server offers it, and otherwise closes
before accepting, which every server turns into HTTP 403 without a body.
``/extensions/`` accepts the socket instead and sends the scope's extensions, so
that a test knows what the server offers. HTTP requests get 404.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await receive()  # websocket.connect
    extensions = scope.get("extensions") or {}
    if scope["path"] == "/extensions/":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(sorted(extensions))})
        await send({"type": "websocket.close", "code": 1000})
        return
    parts = scope["path"].strip("/").split("/")
    status = int(parts[1]) if len(parts) == 2 and parts[0] == "status" and parts[1].isdigit() else 403
    query = parse_qs(scope.get("query_string", b"").decode())
    body = query.get("body", [""])[0].encode()
    content_type = query.get("type", ["text/plain; charset=utf-8"])[0].encode()
    if "websocket.http.response" not in extensions:
        await send({"type": "websocket.close", "code": 1000})
        return
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})
