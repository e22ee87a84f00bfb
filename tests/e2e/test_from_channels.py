"""docs/from-channels.md, tested: the Channels chat (tests/e2e/from_channels_app.py)
and its wsmanager versions (tests/e2e/to_wsmanager_app.py) served by each server
of the e2e suite, and one client script run against each. Step 1 keeps the
Channels app's frames, so the script speaks to it exactly as to the Channels
chat; step 2 is the same script through a JSON-RPC client. The page's blocks
are the apps' ``# [doc:...]`` regions, word for word."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import websockets

from tests.e2e.client import TIMEOUT, Peer
from tests.servers import ROOT, ServerProcess, server_process

pytestmark = pytest.mark.e2e

DOC = ROOT / "docs" / "from-channels.md"
APPS = {
    "channels": "tests.e2e.from_channels_app",
    "wsmanager": "tests.e2e.to_wsmanager_app",
}
REGION = re.compile(r"^# \[doc:(?P<name>[\w-]+)\]\n(?P<body>.*?)^# \[end\]$", re.MULTILINE | re.DOTALL)


def regions(module: str) -> dict[str, str]:
    path = ROOT / Path(*module.split(".")).with_suffix(".py")
    return {m["name"]: m["body"].strip() + "\n" for m in REGION.finditer(path.read_text())}


@pytest.mark.parametrize("module", APPS.values())
def test_the_pages_blocks_are_the_tested_code(module: str) -> None:
    """Every region of the apps is a ``python`` block of the page, word for word."""
    page = DOC.read_text()
    found = regions(module)
    assert found, module
    for name, body in found.items():
        assert f"```python\n{body}```\n" in page, (
            f"docs/from-channels.md lacks the block {name!r} of {module}"
        )


def test_the_page_shows_every_region_of_both_apps_in_order() -> None:
    page = DOC.read_text()
    names = [*regions(APPS["channels"]), *regions(APPS["wsmanager"])]
    assert names == [
        "channels-consumer",
        "channels-view",
        "channels-routing",
        "wsmanager-handler",
        "wsmanager-view",
        "wsmanager-rpc-handler",
        "wsmanager-routing",
    ]
    bodies = {**regions(APPS["channels"]), **regions(APPS["wsmanager"])}
    positions = {name: page.index(body) for name, body in bodies.items()}
    consumer, handler = positions["channels-consumer"], positions["wsmanager-handler"]
    assert consumer < handler < positions["channels-view"] < positions["wsmanager-view"]  # side by side


# -- served ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=list(APPS))
def app(request: pytest.FixtureRequest, server_kind: str) -> Iterator[tuple[str, ServerProcess]]:
    """One of the two chats on one server."""
    module = APPS[request.param]
    env = {"DJANGO_SETTINGS_MODULE": "tests.e2e.chat_settings", "CHAT_URLCONF": module}
    server = server_process(server_kind, app=f"{module}:application", env=env)
    server.start()
    yield request.param, server
    server.stop()


class Chat(Protocol):
    """What the script needs of a client: join a room, say something, hear the next line."""

    async def join(self, server: ServerProcess, room: str) -> Any: ...
    async def say(self, socket: Any, text: str) -> None: ...
    async def heard(self, socket: Any) -> str: ...
    async def leave(self, socket: Any) -> None: ...


class Frames:
    """The Channels chat's own frames: ``{"text"}`` up, ``{"type": "message", "text"}`` down."""

    ws_path = "/ws/chat/"
    http_path = "/rooms/"

    async def join(self, server: ServerProcess, room: str) -> Any:
        origin = f"http://127.0.0.1:{server.port}"
        return await websockets.connect(f"{server.ws_url}{self.ws_path}{room}/", origin=origin)  # type: ignore[arg-type]

    async def say(self, socket: Any, text: str) -> None:
        await socket.send(json.dumps({"text": text}))

    async def heard(self, socket: Any) -> str:
        message = json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))
        assert message["type"] == "message", message
        return str(message["text"])

    async def leave(self, socket: Any) -> None:
        await socket.close()


class Calls:
    """Step 2: a JSON-RPC client calls ``send``; lines arrive as ``message`` notifications."""

    ws_path = "/ws/rpc/chat/"
    http_path = "/rpc/rooms/"

    async def join(self, server: ServerProcess, room: str) -> Any:
        origin = f"http://127.0.0.1:{server.port}"
        return await Peer.open(f"{server.ws_url}{self.ws_path}{room}/", origin=origin)

    async def say(self, socket: Any, text: str) -> None:
        reached = await socket.call("send", text)
        assert isinstance(reached, int) and reached >= 1

    async def heard(self, socket: Any) -> str:
        return str((await socket.notification("message"))["params"]["text"])

    async def leave(self, socket: Any) -> None:
        await socket.close()


async def chat_script(server: ServerProcess, chat: Frames | Calls) -> None:
    """Two people in the lobby, one in the garden; a view speaks to the lobby; one leaves."""
    ann, bob = await chat.join(server, "lobby"), await chat.join(server, "lobby")
    cat = await chat.join(server, "garden")
    await chat.say(ann, "hello")
    assert [await chat.heard(ann), await chat.heard(bob)] == ["hello", "hello"]
    await chat.say(cat, "only the garden")
    assert await chat.heard(cat) == "only the garden"  # before it, nothing: "hello" was the lobby's
    async with httpx.AsyncClient(base_url=server.http_url, timeout=TIMEOUT) as web:
        response = await web.post(f"{chat.http_path}lobby/announce", data={"text": "from a view"})
    assert response.status_code == 202, response.text[:300]
    assert [await chat.heard(ann), await chat.heard(bob)] == ["from a view", "from a view"]
    await chat.leave(ann)
    await chat.say(bob, "ann left")
    assert await chat.heard(bob) == "ann left"
    await chat.say(cat, "still only the garden")
    assert await chat.heard(cat) == "still only the garden"
    await chat.leave(bob)
    await chat.leave(cat)


async def test_the_same_script_runs_against_the_channels_chat_and_step_1(
    app: tuple[str, ServerProcess],
) -> None:
    """Step 1 keeps the Channels chat's frames: its clients need no change."""
    _, server = app
    await chat_script(server, Frames())


@pytest.mark.parametrize("app", ["wsmanager"], indirect=True)
async def test_step_2_runs_the_script_through_json_rpc(app: tuple[str, ServerProcess]) -> None:
    await chat_script(app[1], Calls())


@pytest.mark.parametrize("app", ["wsmanager"], indirect=True)
async def test_step_1_also_says_how_many_sockets_a_view_reached(app: tuple[str, ServerProcess]) -> None:
    """What a Channels layer cannot say: the room's size, in the view's answer."""
    server = app[1]
    chat = Frames()
    sockets = [await chat.join(server, "count"), await chat.join(server, "count")]
    async with httpx.AsyncClient(base_url=server.http_url, timeout=TIMEOUT) as web:
        response = await web.post("/rooms/count/announce", data={"text": "how many?"})
    assert response.json() == {"delivered": 2}
    for socket in sockets:
        assert await chat.heard(socket) == "how many?"
        await chat.leave(socket)
