"""(c') wsmanager's ``ws/rpc/`` handler (bench/apps/wsm.py) without the auth step
(``websocket_app(..., auth=False)``): what cookies, session and user cost a
handshake and an idle socket (``python -m bench.handshakes``)."""

from __future__ import annotations

from channels.routing import ProtocolTypeRouter

from bench.apps import wsm
from wsmanager import route, websocket_app

application = ProtocolTypeRouter(
    {"http": wsm.django_app, "websocket": websocket_app([route("ws/rpc/", wsm.BenchRpc)], auth=False)}
)
