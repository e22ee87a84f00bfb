"""The chat's WebSocket handler: rooms, names, messages and whispers over JSON-RPC.

Route: ``/ws/chat/<room>/`` (room: letters, digits, ``-``, ``_``; 1 to 64
characters), optional query ``?name=<display name>``.

Server methods (client to server): ``send(text)``, ``whisper(to, text)``,
``set_name(name)``, ``who()``. Notifications (server to client):
``message``, ``joined``, ``left``, ``renamed``. See docs/demo.md.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from wsmanager import RpcError, RpcHandler, SocketNotFound, rpc

ROOM_PATTERN = r"[A-Za-z0-9_-]{1,64}"
MAX_TEXT = 2000
MAX_NAME = 64

# Application error codes (outside JSON-RPC's reserved range).
INVALID_TEXT = 4000
INVALID_NAME = 4001
UNKNOWN_RECIPIENT = 4004


def room_group(room: str) -> str:
    return f"room.{room}"


def clean_text(text: str) -> str:
    if not text.strip():
        raise RpcError(INVALID_TEXT, "Text is empty")
    if len(text) > MAX_TEXT:
        raise RpcError(
            INVALID_TEXT, f"Text is longer than {MAX_TEXT} characters", {"max": MAX_TEXT}
        )
    return text


def clean_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise RpcError(INVALID_NAME, f"A name has 1 to {MAX_NAME} characters", {"max": MAX_NAME})
    return name


class ChatHandler(RpcHandler):
    """One chat participant in one room."""

    name = "chat"

    @property
    def room(self) -> str:
        return str(self.info.path_kwargs["room"])

    @property
    def display_name(self) -> str | None:
        return self.info.meta.get("name")

    async def on_connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        wanted = (query.get("name") or [""])[0].strip()[:MAX_NAME] or None
        await self.manager.aupdate_meta(self.id, name=wanted)
        await self.join(room_group(self.room))
        await self.manager.anotify_group(
            room_group(self.room), "joined", id=self.id, name=wanted, exclude=[self.id]
        )

    async def on_disconnect(self, code: int) -> None:
        await self.manager.anotify_group(room_group(self.room), "left", id=self.id)

    @rpc(name="send")
    async def send_message(self, text: str) -> dict[str, Any]:
        """Everyone in the room, sender included, gets ``message``."""
        message = {
            "from": self.id,
            "name": self.display_name,
            "room": self.room,
            "text": clean_text(text),
        }
        delivered = await self.manager.anotify_group(room_group(self.room), "message", **message)
        return {"delivered": delivered}

    @rpc
    async def whisper(self, to: str, text: str) -> dict[str, Any]:
        """Only socket ``to`` (in the same room) gets ``message`` with ``private: true``."""
        text = clean_text(text)
        try:
            groups = await self.manager.agroups_of(to)
        except SocketNotFound:
            groups = frozenset()
        if room_group(self.room) not in groups:
            raise RpcError(UNKNOWN_RECIPIENT, "No such member in this room", {"to": to})
        message = {
            "from": self.id,
            "name": self.display_name,
            "room": self.room,
            "text": text,
            "private": True,
        }
        try:
            await self.manager.anotify(to, "message", **message)
        except SocketNotFound:
            raise RpcError(UNKNOWN_RECIPIENT, "No such member in this room", {"to": to}) from None
        return {"delivered": 1}

    @rpc
    async def set_name(self, name: str) -> str:
        """Change the display name; others in the room get ``renamed``."""
        name = clean_name(name)
        await self.manager.aupdate_meta(self.id, name=name)
        await self.manager.anotify_group(
            room_group(self.room), "renamed", id=self.id, name=name, exclude=[self.id]
        )
        return name

    @rpc
    async def who(self) -> list[dict[str, Any]]:
        """The room's members: ``[{"id": ..., "name": ...}, ...]``."""
        ids = await self.manager.agroup_members(room_group(self.room))
        members = await self.manager.aget_many(ids)
        return [{"id": info.id, "name": info.meta.get("name")} for info in members]
