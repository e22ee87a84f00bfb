"""Origin patterns without a scheme, against a real daphne serving the demo
(``ALLOWED_HOSTS`` = ``localhost``, ``127.0.0.1``, ``[::1]``): the page must have the
socket's own web scheme (``ws`` → ``http``) and the default port or the port the
socket was opened on, as Django's CSRF origin check compares them
(docs/security.md#who-may-connect)."""

from __future__ import annotations

import pytest
import websockets

from tests.e2e.client import Peer, chat_url
from tests.servers import DaphneProcess

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:1234",  # the right host on another port: another site
        "https://127.0.0.1:{port}",  # an https page cannot be this ws:// server's own
        "https://127.0.0.1",
        "http://evil.example:{port}",
    ],
)
async def test_a_page_of_another_scheme_or_port_cannot_open_a_socket(
    demo_server: DaphneProcess, origin: str
) -> None:
    """A scheme-less host pattern no longer admits every scheme and port: HTTP 403."""
    page = origin.format(port=demo_server.port)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(chat_url(demo_server, "origins"), origin=page)
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize(
    "origin",
    ["http://127.0.0.1:{port}", "http://localhost:{port}", "http://127.0.0.1", "http://LOCALHOST"],
)
async def test_a_page_of_the_sockets_scheme_on_its_port_or_the_default_opens_a_socket(
    demo_server: DaphneProcess, origin: str
) -> None:
    """``http`` for ``ws``, on the port the socket was opened on or on 80: admitted."""
    peer = await Peer.open(chat_url(demo_server, "origins"), origin=origin.format(port=demo_server.port))
    assert await peer.call("rpc.ping") == "pong"
    await peer.close()
