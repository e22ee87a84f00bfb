"""The chat's WebSocket handler: rooms, names, messages and whispers over JSON-RPC.

Route: ``/ws/chat/<room>/`` (room: letters, digits, ``-``, ``_``; 1 to 64
characters), optional query ``?name=<display name>``.

Server methods (client to server): ``send(text)``, ``whisper(to, text)``,
``set_name(name)``, ``who(limit=100)``, ``count()``, and ``share(filename)``, which
reads an upload of text chunks (docs/protocol.md section 14) and sends the file
to the room as one message. Notifications (server to client):
``message``, ``joined``, ``left``, ``renamed``. See docs/demo.md.

Members come from presence (:mod:`wsmanager._presence`): a socket without a
login is a member known by its socket id; a logged-in user is one member
however many tabs it has open, known by ``"user:<pk>"``, so that ``joined``
and ``left`` name the same id whichever tab came first or went last, and a
whisper to it reaches every tab of the user in the room.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import NotRequired, TypedDict
from urllib.parse import parse_qs

from wsmanager import Change, Member, RpcError, RpcHandler, SocketNotFound, rpc
from wsmanager.contract import ErrorCode, Notification, raises
from wsmanager_client.protocol import INVALID_PARAMS

ROOM_PATTERN = r"[A-Za-z0-9_-]{1,64}"
MAX_TEXT = 2000
MAX_NAME = 64
#: The most members ``who()`` lists.
WHO_LIMIT = 100
#: The most characters of a file shared with ``share()``, and of its name.
MAX_FILE = 64 * 1024
MAX_FILENAME = 200

# Application error codes (outside JSON-RPC's reserved range).
INVALID_TEXT = 4000
INVALID_NAME = 4001
UNKNOWN_RECIPIENT = 4004
INVALID_FILE = 4002
TEXT_ERROR = ErrorCode(INVALID_TEXT, "Text is empty or too long")
NAME_ERROR = ErrorCode(INVALID_NAME, "A name has 1 to 64 characters")
RECIPIENT_ERROR = ErrorCode(UNKNOWN_RECIPIENT, "No such member in this room")
FILE_ERROR = ErrorCode(INVALID_FILE, "A shared file holds 1 to 65536 characters of text")

# What the handler sends, for the generated contract (manage.py wsmanager schema / typescript).
ChatMessage = TypedDict(
    "ChatMessage",
    {
        "from": str | None,
        "name": str | None,
        "room": str,
        "text": str,
        "private": NotRequired[bool],
        "file": NotRequired[str],
    },
)


class MemberEntry(TypedDict):
    """A member as ``who()`` and ``joined`` show it."""

    id: str
    name: str | None
    user: NotRequired[str]
    sockets: NotRequired[int]


class Delivered(TypedDict):
    delivered: int


def room_group(room: str) -> str:
    return f"room.{room}"


def rate_limit_from(value: str, default: tuple[float, float] | None) -> tuple[float, float] | None:
    """``DEMO_RATE_LIMIT``: empty for ``default``, ``off`` for none, else ``rate,burst``."""
    if not value.strip():
        return default
    if value.strip().lower() == "off":
        return None
    rate, _, burst = value.partition(",")
    return float(rate), float(burst or rate)


def clean_text(text: str) -> str:
    if not text.strip():
        raise RpcError(INVALID_TEXT, "Text is empty")
    if len(text) > MAX_TEXT:
        raise RpcError(INVALID_TEXT, f"Text is longer than {MAX_TEXT} characters", {"max": MAX_TEXT})
    return text


def member_id(member: Member) -> str:
    """The id the page knows a member by: its socket id, or ``user:<pk>`` when logged in."""
    return member.socket_ids[0] if member.user_id is None else f"user:{member.user_id}"


def describe(member: Member) -> MemberEntry:
    """A member as ``who()`` and ``joined`` show it (users also get ``user`` and ``sockets``)."""
    out: MemberEntry = {"id": member_id(member), "name": member.meta.get("name")}
    if member.user_id is not None:
        out["user"] = member.user_id
        out["sockets"] = len(member.socket_ids)
    return out


def clean_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise RpcError(INVALID_NAME, f"A name has 1 to {MAX_NAME} characters", {"max": MAX_NAME})
    return name


class ChatHandler(RpcHandler):
    """One chat participant in one room."""

    handler_name = "chat"
    #: The library's default (256 per address and process) unless the
    #: environment says otherwise; load tests from one machine raise it.
    max_connections_per_address = int(os.environ.get("DEMO_MAX_PER_ADDRESS", "256")) or None
    #: The library's default (100 messages/s, bursts of 200, per socket) unless the
    #: environment says otherwise: ``DEMO_RATE_LIMIT=off``, or ``rate,burst``.
    rate_limit = rate_limit_from(os.environ.get("DEMO_RATE_LIMIT", ""), RpcHandler.rate_limit)
    #: Presence changes of a room are announced at most once per 50 ms.
    presence_interval = 0.05
    #: Connection recovery: a dropped socket may come back within this many
    #: seconds with its id, room, presence and missed messages (0: off).
    recovery_window = float(os.environ.get("WSMANAGER_RECOVERY_WINDOW", "60"))
    sends = {
        "message": Notification(
            ChatMessage,
            "A message to the room (or, with `private: true`, a whisper); `from` is the sender's "
            "socket id, null when it came from the HTTP API.",
        ),
        "joined": Notification(MemberEntry, "A member arrived (a user's first tab in the room)."),
        "left": Notification({"id": str}, "A member left (a user's last tab in the room)."),
        "renamed": Notification({"id": str, "name": str}, "A member changed its display name."),
        "presence": Notification(
            {"joined": list[MemberEntry], "left": list[str]},
            "Several members arrived or left within 50 ms (a burst): their entries, and the ids of "
            "those who left. The list may hold the receiving member itself.",
        ),
    }

    @property
    def room(self) -> str:
        return str(self.info.path_kwargs["room"])

    @property
    def display_name(self) -> str | None:
        return self.info.meta.get("name")

    @property
    def member_id(self) -> str:
        """How the room knows this socket's member (see :func:`member_id`)."""
        user_id = self.info.user_id
        return self.id if user_id is None else f"user:{user_id}"

    async def on_connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        wanted = (query.get("name") or [""])[0].strip()[:MAX_NAME] or None
        user = self.scope.get("user")
        if wanted is None and self.info.user_id is not None and user is not None:
            wanted = user.get_username()[:MAX_NAME] or None
        await self.manager.aupdate_meta(self.id, name=wanted)
        await self.join(room_group(self.room))  # others hear "joined" from on_presence

    @classmethod
    async def on_presence_changes(cls, group: str, changes: list[Change]) -> None:
        """Tell the room who arrived (a user's first tab) and who left (its last).

        Up to four changes at a time: one ``joined`` (not to the member itself)
        or ``left`` each, in order. More (a burst within ``presence_interval``):
        one ``presence`` notification with both lists, so a burst of N joins
        costs about one frame per member and interval instead of N.
        """
        if not group.startswith("room."):
            return
        if len(changes) <= 4:
            for event, member in changes:
                if event == "joined":
                    others = member.socket_ids
                    await cls.manager.anotify_group(group, "joined", exclude=others, **describe(member))
                else:
                    await cls.manager.anotify_group(group, "left", id=member_id(member))
            return
        joined = [describe(m) for event, m in changes if event == "joined"]
        left = [member_id(m) for event, m in changes if event == "left"]
        await cls.manager.anotify_group(group, "presence", joined=joined, left=left)

    async def _here(self, to: str) -> list[str]:
        """The sockets in this room of member ``to`` (a socket id or ``user:<pk>``)."""
        if to.startswith("user:"):
            candidates = await self.manager.auser_sockets(to.removeprefix("user:"))
        else:
            candidates = [to]
        group = room_group(self.room)
        return [info.id for info in await self.manager.aget_many(candidates) if group in info.groups]

    @rpc(name="send")
    @raises(TEXT_ERROR)
    async def send_message(self, text: str) -> Delivered:
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
    @raises(FILE_ERROR)
    async def share(self, chunks: AsyncIterator[str], filename: str) -> Delivered:
        """Share a text file, uploaded in chunks: the room gets one ``message`` with ``file``.

        The chunks arrive as the server grants credit; at most 65,536 characters in all
        (more, or none, is refused with 4002 and nothing is sent).
        """
        parts: list[str] = []
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > MAX_FILE:
                raise RpcError(INVALID_FILE, FILE_ERROR.message, {"max": MAX_FILE})
            parts.append(chunk)
        if size == 0:
            raise RpcError(INVALID_FILE, FILE_ERROR.message, {"max": MAX_FILE})
        message = {
            "from": self.id,
            "name": self.display_name,
            "room": self.room,
            "text": "".join(parts),
            "file": filename.strip()[:MAX_FILENAME] or "file.txt",
        }
        delivered = await self.manager.anotify_group(room_group(self.room), "message", **message)
        return {"delivered": delivered}

    @rpc
    @raises(TEXT_ERROR, RECIPIENT_ERROR)
    async def whisper(self, to: str, text: str) -> Delivered:
        """Only member ``to`` (in the same room) gets ``message`` with ``private: true``.

        ``to`` is a socket id, or ``user:<pk>`` for every tab of that user in the room.
        """
        text = clean_text(text)
        message = {
            "from": self.id,
            "name": self.display_name,
            "room": self.room,
            "text": text,
            "private": True,
        }
        delivered = await self.manager.anotify_many(await self._here(to), "message", **message)
        if not delivered:
            raise RpcError(UNKNOWN_RECIPIENT, "No such member in this room", {"to": to})
        return {"delivered": delivered}

    @rpc
    @raises(NAME_ERROR)
    async def set_name(self, name: str) -> str:
        """Change the display name (of every tab of a user in the room); others get ``renamed``."""
        name = clean_name(name)
        await self.manager.aupdate_meta(self.id, name=name)
        for sid in await self._here(self.member_id):
            if sid != self.id:
                with contextlib.suppress(SocketNotFound):  # that tab closed meanwhile
                    await self.manager.aupdate_meta(sid, name=name)
        await self.manager.anotify_group(
            room_group(self.room), "renamed", id=self.member_id, name=name, exclude=[self.id]
        )
        return name

    @rpc
    async def who(self, limit: int = WHO_LIMIT) -> list[MemberEntry]:
        """The room's members, earliest first: ``[{"id": ..., "name": ...}, ...]``.

        One entry per member: a logged-in user's entry (``id`` ``user:<pk>``)
        also has ``user`` and ``sockets`` (how many of its tabs are in the room).
        At most ``limit`` (1 to 100, the default) of them: a larger room lists
        that many (which ones is unspecified), and ``count()`` says how many
        there are, so that no room is too large to read.
        """
        if not 1 <= limit <= WHO_LIMIT:
            raise RpcError(INVALID_PARAMS, f"limit is 1 to {WHO_LIMIT}", {"min": 1, "max": WHO_LIMIT})
        members = await self.manager.apresence(room_group(self.room), limit=limit)
        return [describe(m) for m in members]

    @rpc
    async def count(self) -> int:
        """How many members the room has (``who()`` lists at most 100 of them)."""
        return await self.manager.amember_count(room_group(self.room))
