"""permessage-deflate (RFC 7692) on every real server: what each negotiates for a
client that offers it, with which parameters, and that messages (JSON and MessagePack)
still flow over a compressed socket. The table in docs/compression.md is these facts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, PerMessageDeflate

from tests.servers import (
    ServerProcess,
    every_implementation,  # noqa: F401  (server_kind: also uvicorn's other implementations)
    server_process,
)
from wsmanager_client import encodings as wire

pytestmark = pytest.mark.e2e

WAIT = 20.0  # a bound on each wait, so that a failure shows instead of hanging; never a threshold

#: What each server answers to a browser's offer (``permessage-deflate; client_max_window_bits``):
#: None (no compression), or the window bits (server's, client's) and context takeover.
NEGOTIATED: dict[str, tuple[int, int, bool] | None] = {
    "daphne": None,  # autobahn could; daphne never offers it (django/daphne PR #331)
    "uvicorn": (15, 15, True),  # websockets' legacy server, its defaults
    "uvicorn-sansio": (12, 12, True),  # uvicorn's own factory: 12 bits, memLevel 5
    "uvicorn-wsproto": (15, 15, True),  # wsproto's defaults
    "hypercorn": (15, 15, True),  # wsproto's defaults; no switch to turn it off
    "granian": None,  # no permessage-deflate
}


@pytest.fixture(scope="module")
def server(model_server: ServerProcess) -> ServerProcess:
    return model_server


def deflate_of(ws: Any) -> PerMessageDeflate | None:
    found = [e for e in ws.protocol.extensions if isinstance(e, PerMessageDeflate)]
    return found[0] if found else None


async def test_what_each_server_negotiates_for_a_browsers_offer(
    server: ServerProcess, server_kind: str
) -> None:
    offer = [ClientPerMessageDeflateFactory(client_max_window_bits=True)]
    async with websockets.connect(f"{server.ws_url}/ws/model/", extensions=offer, compression=None) as ws:
        deflate = deflate_of(ws)
        got = None
        if deflate is not None:
            got = (
                deflate.local_max_window_bits,
                deflate.remote_max_window_bits,
                not deflate.remote_no_context_takeover,
            )
        assert got == NEGOTIATED[server_kind], ws.response.headers.get("Sec-WebSocket-Extensions")
        assert isinstance(await asyncio.wait_for(ws.recv(), WAIT), str)  # rpc.connected


async def test_a_client_may_ask_for_small_windows_and_no_context_takeover(
    server: ServerProcess, server_kind: str
) -> None:
    """The memory a compressed socket holds is the client's to bound where the server compresses."""
    offer = [
        ClientPerMessageDeflateFactory(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            server_max_window_bits=9,
            client_max_window_bits=9,
        )
    ]
    async with websockets.connect(f"{server.ws_url}/ws/model/", extensions=offer, compression=None) as ws:
        deflate = deflate_of(ws)
        if NEGOTIATED[server_kind] is None:
            assert deflate is None
        else:
            assert deflate is not None
            assert (deflate.remote_max_window_bits, deflate.remote_no_context_takeover) == (9, True)


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_calls_flow_over_the_socket_compressed_where_the_server_compresses(
    server: ServerProcess, server_kind: str, encoding: str
) -> None:
    protocols = [websockets.Subprotocol(wire.SUBPROTOCOLS["msgpack"])] if encoding == "msgpack" else None
    async with websockets.connect(f"{server.ws_url}/ws/model/", subprotocols=protocols) as ws:
        # Compressed as the table says (daphne and granian never compress).
        assert (deflate_of(ws) is not None) == (NEGOTIATED[server_kind] is not None)
        await asyncio.wait_for(ws.recv(), WAIT)  # rpc.connected
        text = "compressible " * 2000
        message = {"jsonrpc": "2.0", "method": "echo", "params": [text], "id": 1}
        if encoding == "msgpack":
            await ws.send(wire.pack(message))
            reply = wire.loads(await asyncio.wait_for(ws.recv(), WAIT))
        else:
            await ws.send(json.dumps(message))
            reply = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert reply == {"jsonrpc": "2.0", "result": text, "id": 1}


async def test_a_handler_with_compression_false_gets_none_on_every_server(
    server: ServerProcess, server_kind: str
) -> None:
    """``compression = False`` (route ``ws/model-plain/``): the browser's offer is answered without
    permessage-deflate, calls flow, and the same process's other handler still compresses."""
    offer = [ClientPerMessageDeflateFactory(client_max_window_bits=True)]
    async with websockets.connect(
        f"{server.ws_url}/ws/model-plain/", extensions=offer, compression=None
    ) as ws:
        assert deflate_of(ws) is None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await asyncio.wait_for(ws.recv(), WAIT)  # rpc.connected
        text = "compressible " * 2000
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [text], "id": 1}))
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT)) == {
            "jsonrpc": "2.0",
            "result": text,
            "id": 1,
        }
        async with websockets.connect(
            f"{server.ws_url}/ws/model/", extensions=offer, compression=None
        ) as other:
            assert (deflate_of(other) is not None) == (NEGOTIATED[server_kind] is not None)


async def test_uvicorn_turns_it_off_for_the_whole_process() -> None:
    """The process-wide switch (``--ws-per-message-deflate false``): every handler uncompressed."""
    app = "tests.e2e.rpc_app:application"
    with server_process("uvicorn-sansio", app=app, extra_args=("--ws-per-message-deflate", "false")) as proc:
        offer = [ClientPerMessageDeflateFactory(client_max_window_bits=True)]
        async with websockets.connect(f"{proc.ws_url}/ws/model/", extensions=offer, compression=None) as ws:
            assert deflate_of(ws) is None
