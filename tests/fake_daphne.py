"""Stand-ins for what wsmanager.servers reaches behind daphne's ``send``.

daphne's ``send`` is ``functools.partial(server.handle_reply, protocol)``;
:func:`autobahn_like_reply` takes its place, defined as if in
``daphne.server`` (the module the adapter recognises daphne by), and
:class:`FakeProtocol` stands for the autobahn protocol with its transport.
"""

from __future__ import annotations

import functools
from typing import Any


class FakeTransport:
    """What the probe reads of a Twisted TCP transport."""

    def __init__(self) -> None:
        self.dataBuffer = b"0123456789"
        self.offset = 4
        self._tempDataLen = 100


class FakeProtocol:
    """What wsmanager reaches behind daphne's send: the transport and sendCloseFrame."""

    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.close_frames: list[tuple[int | None, bytes | None, bool]] = []

    def sendCloseFrame(
        self, code: int | None = None, reasonUtf8: bytes | None = None, isReply: bool = False
    ) -> None:
        self.close_frames.append((code, reasonUtf8, isReply))


async def autobahn_like_reply(
    protocol: FakeProtocol, sent: list[dict[str, Any]], message: dict[str, Any]
) -> None:
    """Like daphne's reply method: a close goes through autobahn's sendClose checks."""
    if message["type"] == "websocket.close" and "code" in message:
        code = message["code"]
        if type(code) is not int:
            raise Exception(f"invalid type {type(code)!r} for close code (must be an integer)")
        if code != 1000 and not 3000 <= code <= 4999:
            raise Exception(f"invalid close code {code} (must be 1000 or from [3000, 4999])")
    sent.append(message)


autobahn_like_reply.__module__ = "daphne.server"


def daphne_send(protocol: Any, sent: list[dict[str, Any]] | None = None) -> Any:
    """A send shaped like daphne's, writing ASGI messages to ``sent``."""
    return functools.partial(autobahn_like_reply, protocol, [] if sent is None else sent)
