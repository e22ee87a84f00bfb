"""The three systems under test and each one's wire protocol, spoken by hand.

A :class:`System` knows its ASGI application and how a client of it opens
each kind of socket, frames a request, and recognises the answer. The
load generator speaks every protocol itself over :class:`~bench.wsclient.WsConn`,
so the client's cost is the same whichever server it drives:

* bare Channels and wsmanager: WebSocket text frames (JSON-RPC 2.0 for the
  RPC scenario and for wsmanager's notifications);
* socket.io: Engine.IO v4 / Socket.IO v5 over a plain WebSocket
  (``/socket.io/?EIO=4&transport=websocket``): the open packet ``0{...}``,
  namespace connect ``40`` answered by ``40{"sid": ...}``, ping ``2`` answered
  by pong ``3``, events ``42[...]`` and acks ``43N[...]``.

Before any timing, :meth:`System.preflight` checks each server process once;
wsmanager's uses the library's own Python client (:mod:`wsmanager_client`),
outside the measured path, so a broken build fails before the first number.
"""

from __future__ import annotations

import json
from typing import Any

from wsmanager_client import connect

from .wsclient import ORIGIN, WsConn, open_ws

__all__ = [
    "SYSTEMS",
    "Bare",
    "DemoChat",
    "RawWebsockets",
    "SocketIO",
    "System",
    "WsManager",
    "WsManagerMetrics",
    "sio_installed",
]

HOST = "127.0.0.1"


def sio_installed() -> bool:
    try:
        import socketio  # noqa: F401
    except ImportError:
        return False
    return True


class System:
    """What the load generator needs to drive one system."""

    key = ""  # short name used in results and on the command line
    label = ""  # column title
    app = ""  # ASGI application
    server = "daphne"  # the ASGI server that serves it (tests.servers.SERVER_KINDS)
    #: The scenarios it can run (None: every one).
    scenarios: frozenset[str] | None = None

    def env(self, redis_url: str, prefix: str) -> dict[str, str]:
        """Environment of its server processes beyond the bench's own (default: nothing)."""
        return {}

    async def preflight(self, port: int) -> None:
        """Check once, before any timing, that the process on ``port`` answers (default: nothing to check)."""

    # -- sockets -------------------------------------------------------------
    async def open_echo(self, port: int) -> WsConn:
        raise NotImplementedError

    async def open_rpc(self, port: int) -> WsConn:
        """A socket for RPC calls (also the 'idle connection' of the connections scenario)."""
        raise NotImplementedError

    async def open_room(self, port: int, room: str, listen: bool) -> WsConn:
        raise NotImplementedError

    async def open_direct(self, port: int) -> tuple[WsConn, str]:
        """A socket reachable by id from the send view, and its id."""
        raise NotImplementedError

    # -- frames ---------------------------------------------------------------
    def echo_request(self, payload: str) -> str:
        return payload

    def echo_reply(self, payload: str) -> str:
        """The exact frame the server answers an echo with."""
        return payload

    def rpc_request(self, call_id: int, payload: str) -> str:
        return json.dumps(
            {"jsonrpc": "2.0", "method": "echo", "params": [payload], "id": call_id},
            separators=(",", ":"),
        )

    def rpc_result(self, text: str) -> tuple[Any, Any]:
        """(id, result) of an RPC answer."""
        reply = json.loads(text)
        return reply.get("id"), reply.get("result", reply.get("error"))

    def broadcast_request(self, payload: str) -> str:
        return payload

    def group_payload(self, text: str) -> str:
        """The payload of a frame the server pushed to a room or group (fan-out)."""
        return text

    def direct_payload(self, text: str) -> str:
        """The payload of a frame the send view pushed to one socket."""
        return text


class Bare(System):
    key, label, app = "bare", "bare", "bench.apps.bare:application"

    async def open_echo(self, port: int) -> WsConn:
        return await open_ws(HOST, port, "/ws/echo/")

    async def open_rpc(self, port: int) -> WsConn:
        return await open_ws(HOST, port, "/ws/rpc/")

    async def open_room(self, port: int, room: str, listen: bool) -> WsConn:
        return await open_ws(HOST, port, f"/ws/room/{room}/" + ("" if listen else "?listen=0"))

    async def open_direct(self, port: int) -> tuple[WsConn, str]:
        conn = await open_ws(HOST, port, "/ws/direct/")
        return conn, json.loads(await conn.recv())["id"]


class WsManager(System):
    key, label, app = "wsm", "wsmanager", "bench.apps.wsm:application"

    def __init__(self, server: str = "daphne") -> None:
        """wsmanager served by ``server``; on daphne its key is ``wsm``, else ``wsm-<server>``."""
        self.server = server
        if server != "daphne":
            self.key, self.label = f"wsm-{server}", f"wsmanager ({server})"

    async def _open_rpc_handler(self, port: int, path: str) -> tuple[WsConn, str]:
        conn = await open_ws(HOST, port, path)
        hello = json.loads(await conn.recv())
        assert hello["method"] == "rpc.connected", hello
        return conn, hello["params"]["id"]

    async def preflight(self, port: int) -> None:
        """The library's Python client calls ``echo`` and ``rpc.ping`` on this process."""
        url = f"ws://{HOST}:{port}/ws/rpc/"
        async with connect(
            url, origin=ORIGIN, reconnect=False, heartbeat_interval=None, timeout=10
        ) as client:
            echoed, pong = await client.invoke("echo", "preflight"), await client.invoke("rpc.ping")
        if (echoed, pong) != ("preflight", "pong"):
            raise AssertionError(f"preflight on port {port}: echo gave {echoed!r}, rpc.ping {pong!r}")

    async def open_echo(self, port: int) -> WsConn:
        return await open_ws(HOST, port, "/ws/echo/")

    async def open_rpc(self, port: int) -> WsConn:
        return (await self._open_rpc_handler(port, "/ws/rpc/"))[0]

    async def open_room(self, port: int, room: str, listen: bool) -> WsConn:
        path = f"/ws/room/{room}/" + ("" if listen else "?listen=0")
        return (await self._open_rpc_handler(port, path))[0]

    async def open_direct(self, port: int) -> tuple[WsConn, str]:
        return await self._open_rpc_handler(port, "/ws/rpc/")

    def broadcast_request(self, payload: str) -> str:
        # A notification: no answer to the sender, as with the other systems.
        return json.dumps(
            {"jsonrpc": "2.0", "method": "broadcast", "params": [payload]}, separators=(",", ":")
        )

    def group_payload(self, text: str) -> str:
        message = json.loads(text)
        params = message["params"]
        return str(params[0] if isinstance(params, list) else text)


class WsManagerMetrics(WsManager):
    """wsmanager with ``wsmanager.ops.metrics.install()`` (bench/apps/wsm_metrics.py), for ``--metrics``:
    key ``wsm-metrics`` on daphne, else ``wsm-<server>-metrics``."""

    app = "bench.apps.wsm_metrics:application"

    def __init__(self, server: str = "daphne") -> None:
        super().__init__(server)
        self.key, self.label = f"{self.key}-metrics", f"{self.label} + metrics"


class SocketIO(System):
    key, label, app = "sio", "socket.io", "bench.apps.sio:application"

    async def _open(self, port: int, auth: dict[str, Any] | None = None) -> tuple[WsConn, str]:
        conn = await open_ws(HOST, port, "/socket.io/?EIO=4&transport=websocket")
        conn.ping, conn.pong = "2", "3"
        opening = await conn.recv()
        assert opening.startswith("0{"), opening
        conn.send_text("40" + (json.dumps(auth, separators=(",", ":")) if auth else ""))
        connected = await conn.recv()
        assert connected.startswith("40{"), connected
        return conn, json.loads(connected[2:])["sid"]

    async def open_echo(self, port: int) -> WsConn:
        return (await self._open(port))[0]

    async def open_rpc(self, port: int) -> WsConn:
        return (await self._open(port))[0]

    async def open_room(self, port: int, room: str, listen: bool) -> WsConn:
        return (await self._open(port, {"room": room, "listen": listen}))[0]

    async def open_direct(self, port: int) -> tuple[WsConn, str]:
        return await self._open(port)

    def echo_request(self, payload: str) -> str:
        return "42" + json.dumps(["echo_emit", payload], separators=(",", ":"))

    def echo_reply(self, payload: str) -> str:
        return "42" + json.dumps(["echo", payload], separators=(",", ":"))

    def rpc_request(self, call_id: int, payload: str) -> str:
        return f"42{call_id}" + json.dumps(["echo", payload], separators=(",", ":"))

    def rpc_result(self, text: str) -> tuple[Any, Any]:
        if not text.startswith("43"):
            return None, text
        start = text.index("[")
        return int(text[2:start]), json.loads(text[start:])[0]

    def broadcast_request(self, payload: str) -> str:
        return "42" + json.dumps(["broadcast", payload], separators=(",", ":"))

    def group_payload(self, text: str) -> str:
        return str(json.loads(text[2:])[1])

    def direct_payload(self, text: str) -> str:
        return str(json.loads(text[2:])[1])


class RawWebsockets(Bare):
    """The ceiling: the ``websockets`` library alone (bench/apps/raw.py), on bare's paths
    and frames; it has no send by id (the runner leaves that scenario out).

    Its room broadcasts what the sender sent, as it is; the sender sends the very
    frame wsmanager's listeners get (the JSON-RPC notification ``msg``), so that
    both rooms deliver byte-identical frames: the client, the bottleneck of a
    fan-out, then does the same work per frame for both."""

    key, label, app, server = "raw", "raw websockets", "", "raw-websockets"

    def broadcast_request(self, payload: str) -> str:
        return json.dumps({"jsonrpc": "2.0", "method": "msg", "params": [payload]}, separators=(",", ":"))

    def group_payload(self, text: str) -> str:
        return str(json.loads(text)["params"][0])


class DemoChat(System):
    """The demo's chat (demo_chat, ``/ws/chat/<room>/``), as users run it: its handler
    with presence, recovery (60 s), the journal and its per-socket limits, on the
    demo's own settings. Fan-out and connections only (it has no echo route).

    A broadcast is the chat's ``send`` call, sent as a notification (no answer, as
    with the other systems); listeners get ``message`` notifications and ignore
    every other frame (presence). The sender is a member of the room too (the chat
    has no listen-only mode): it gets each message as well, not counted. Its rate
    limit comes from ``BENCH_DEMO_RATE_LIMIT`` (``DEMO_RATE_LIMIT``: default
    ``off``, since a round-based fan-out from one sender goes beyond the demo's
    100 messages/s per socket; ``default`` keeps the demo's own).
    """

    key, label, app, server = "demo", "demo chat", "demo_chat.asgi:application", "uvicorn"
    scenarios = frozenset({"fan-out", "connections"})

    def __init__(self, server: str = "uvicorn") -> None:
        self.server = server
        self.key, self.label = f"demo-{server}", f"demo chat ({server})"

    def env(self, redis_url: str, prefix: str) -> dict[str, str]:
        import os

        limit = os.environ.get("BENCH_DEMO_RATE_LIMIT", "off")
        return {
            "DJANGO_SETTINGS_MODULE": "demo_chat.settings",
            "DEMO_DB": ":memory:",
            "DEMO_MAX_PER_ADDRESS": "0",
            "DEMO_RATE_LIMIT": "" if limit == "default" else limit,
            "WSMANAGER_LOG": "WARNING",
            "REDIS_URL": redis_url,
            "WSMANAGER_REDIS_PREFIX": f"{prefix}:demo",
        }

    async def _open(self, port: int, path: str) -> WsConn:
        conn = await open_ws(HOST, port, path)
        hello = json.loads(await conn.recv())
        assert hello["method"] == "rpc.connected", hello
        return conn

    async def open_rpc(self, port: int) -> WsConn:
        return await self._open(port, "/ws/chat/lobby/")

    async def open_room(self, port: int, room: str, listen: bool) -> WsConn:
        return await self._open(port, f"/ws/chat/{room}/")

    def broadcast_request(self, payload: str) -> str:
        return json.dumps({"jsonrpc": "2.0", "method": "send", "params": [payload]}, separators=(",", ":"))

    def group_payload(self, text: str) -> str | None:  # type: ignore[override]
        message = json.loads(text)
        if message.get("method") != "message":
            return None  # presence, or another notification: not a round's frame
        return str(message["params"]["text"])


SYSTEMS: dict[str, System] = {s.key: s for s in (Bare(), SocketIO(), WsManager(), RawWebsockets())}
