"""Test helpers: an RPC-aware communicator, a logged-in user, and a clean slate.

::

    import pytest
    from wsmanager.testing import RpcCommunicator
    from mysite.asgi import application

    @pytest.mark.django_db(transaction=True)
    async def test_add(django_user_model):
        user = await django_user_model.objects.acreate(username="alice")
        async with RpcCommunicator(application, "/ws/notes/", user=user) as client:
            assert await client.call("add", "milk") == {"id": 1, "text": "milk"}

(pytest-django's ``django_user_model`` fixture; pytest-asyncio with
``asyncio_mode = "auto"``; docs/testing.md says why ``transaction=True``.)

:class:`RpcCommunicator` wraps Channels' ``WebsocketCommunicator`` (in-process,
no server): it learns its socket id from ``rpc.connected``, numbers its calls,
and keeps notifications that arrive while it waits for a result so that
:meth:`RpcCommunicator.next_notification` returns them in order. ``user=``
logs a user in through a real session (Django's ``force_login``: a session
row and its cookie), ``origin=`` sends an ``Origin`` header (and the matching
``Host``), and a refused handshake raises :class:`HandshakeRefused` with the
status and the reason the server gave (its scope offers the
``websocket.http.response`` extension, as uvicorn does).

:func:`reset` is the one place that forgets the process's singletons: the
registry backend instance, the node (and its background tasks), the
counters, the database-use flag, the presence warnings and the refusal log
throttle; :func:`areset` also clears and closes the registry's store first.
The pytest plugin :mod:`wsmanager.testing.plugin` (loaded by itself when
wsmanager is installed) calls :func:`reset` around every test.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from channels.testing import WebsocketCommunicator

from wsmanager_client import encodings as wire

from .. import _state
from ..connection import _refusals as refusals
from ..exceptions import RemoteError, WsManagerError
from ..registry import get_registry

__all__ = ["HandshakeRefused", "RpcCommunicator", "areset", "reset", "session_cookie"]


def reset() -> None:
    """Forget the process's state (between tests): everything its owners declared to
    :mod:`wsmanager._state` (registry instance and journal, node, counters, the
    database-use flag, presence's gathered changes and warnings, what recovery learnt of
    journals, which refusals were logged, the draining mark, the drain under way, the
    cached settings, the topics' history store). docs/architecture.md lists them."""
    _state.reset()


async def areset() -> None:
    """Forget every socket, group and the node (call between tests)."""
    registry = get_registry()
    try:
        await registry.clear()
    finally:
        await registry.close()
        reset()


async def session_cookie(user: Any, backend: str | None = None) -> str:
    """A ``Cookie`` header value that logs ``user`` in: Django's ``force_login``
    (a real session in the session store, with the user's auth hash), as the
    test client's ``aforce_login`` makes it. Needs the database (``django_db``)."""
    from django.conf import settings
    from django.test import AsyncClient

    client = AsyncClient()
    await client.aforce_login(user, backend)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}"


class HandshakeRefused(WsManagerError, AssertionError):
    """The server refused the socket: HTTP ``status`` before the handshake, or
    close ``code`` right after it; ``reason`` is what the server said ("" if nothing).
    An ``AssertionError`` too, so that a test that expected the socket fails."""

    def __init__(self, status: int | None, code: int | None, reason: str) -> None:
        self.status = status
        self.code = code
        self.reason = reason
        how = f"HTTP {status}" if status is not None else f"closed with {code}"
        super().__init__(f"socket refused: {how}: {reason or '(no reason given)'}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.code, self.reason))


class RpcCommunicator(WebsocketCommunicator):  # type: ignore[misc]
    """A JSON-RPC client for handler tests, running the app in-process.

    ``user``: log this user in through a real session before the handshake
    (the app must be wrapped in ``websocket_app(auth=True)``, the default, or
    Channels' ``AuthMiddlewareStack``). ``origin``: send this ``Origin`` header,
    and a ``Host`` header with the same host and port unless ``headers`` has one
    (a page of the site itself); without it no Origin is sent, which is allowed
    unless ``WSMANAGER["REQUIRE_ORIGIN"]``. ``encoding="msgpack"``: offer the
    MessagePack subprotocol and speak MessagePack in binary frames
    (docs/protocol.md, section 15); :attr:`encoding` is what the server chose.
    """

    def __init__(
        self,
        application: Any,
        path: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        timeout: float = 3.0,
        *,
        user: Any = None,
        origin: str | None = None,
        encoding: str = wire.JSON,
    ) -> None:
        headers = list(headers or [])
        if origin is not None:
            headers.append((b"origin", origin.encode("latin-1")))
            if not any(name.lower() == b"host" for name, _ in headers):
                headers.append((b"host", urlsplit(origin).netloc.encode("latin-1")))
        offered = [wire.SUBPROTOCOLS[encoding]] if encoding != wire.JSON else None
        super().__init__(application, path, headers=headers, subprotocols=offered)
        #: The encoding in use: the one asked for once the server chose its subprotocol, else JSON.
        self.encoding = wire.JSON
        self.scope["extensions"] = {refusals.HTTP_RESPONSE_EXTENSION: {}}
        self.id = ""
        #: The whole ``rpc.connected`` notification of the accepted socket.
        self.hello: dict[str, Any] = {}
        self.timeout = timeout
        self.user = user
        #: Why the last :meth:`connect` was refused; None if it was not.
        self.refusal: HandshakeRefused | None = None
        self._ids = itertools.count(1)
        self._notes: deque[dict[str, Any]] = deque()

    async def connect(self, timeout: float | None = None) -> tuple[bool, Any]:
        """Open the socket; when accepted, wait for ``rpc.connected`` and keep the id.

        Returns ``(True, subprotocol)``, or ``(False, status or close code)`` with
        the details in :attr:`refusal`.
        """
        wait = timeout or self.timeout
        if self.user is not None:
            await self._log_in()
        await self.send_input({"type": "websocket.connect"})
        answer = await self.receive_output(wait)
        if answer["type"] == "websocket.http.response.start":
            body = b""
            while True:
                part = await self.receive_output(wait)
                body += part.get("body", b"")
                if not part.get("more_body"):
                    break
            self.refusal = HandshakeRefused(answer["status"], None, body.decode(errors="replace").strip())
            return False, answer["status"]
        if answer["type"] == "websocket.close":  # a server without the extension answers 403
            self.refusal = HandshakeRefused(403, None, answer.get("reason") or "")
            return False, answer.get("code", 1000)
        self.response_headers = answer.get("headers", [])
        first = await self.receive_output(wait)
        if first["type"] == "websocket.close":  # accepted and closed at once (4429, RejectConnection)
            code = first.get("code", 1000)
            self.refusal = HandshakeRefused(None, code, first.get("reason") or "")
            return False, code
        self.encoding = wire.encoding_of(answer.get("subprotocol"))
        hello = self._decoded(first)
        assert isinstance(hello, dict) and hello.get("method") == "rpc.connected", hello
        self.hello = hello
        self.id = hello["params"]["id"]
        return True, answer.get("subprotocol")

    async def _log_in(self) -> None:
        """Add the user's session cookie to the ``Cookie`` header (or make one)."""
        cookie = (await session_cookie(self.user)).encode("latin-1")
        headers = self.scope["headers"]
        for i, (name, value) in enumerate(headers):
            if name.lower() == b"cookie":
                headers[i] = (name, b"; ".join([value, cookie]))
                return
        headers.append((b"cookie", cookie))

    async def __aenter__(self) -> RpcCommunicator:
        accepted, _ = await self.connect()
        if not accepted:
            assert self.refusal is not None
            await self.disconnect()  # let the application end: no task left pending
            raise self.refusal
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    async def request(self, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Send a call and return its whole response object."""
        call_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": call_id}
        if args or kwargs:
            message["params"] = kwargs or list(args)
        await self._send_message(message)
        while True:
            reply = await self._receive_message(self.timeout)
            if isinstance(reply, dict) and reply.get("id") == call_id and "method" not in reply:
                return reply
            self._notes.append(reply)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a server method; its result, or RemoteError for an error answer."""
        reply = await self.request(method, *args, **kwargs)
        if "error" in reply:
            err = reply["error"]
            raise RemoteError(self.id, method, err["code"], err["message"], err.get("data"))
        return reply["result"]

    async def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Send a notification (no answer)."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if args or kwargs:
            message["params"] = kwargs or list(args)
        await self._send_message(message)

    async def next_notification(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message from the server that is not a response to our calls."""
        if self._notes:
            return self._notes.popleft()
        reply: dict[str, Any] = await self._receive_message(timeout or self.timeout)
        return reply

    async def _send_message(self, message: Any) -> None:
        if self.encoding == wire.MSGPACK:
            await self.send_to(bytes_data=wire.pack(message))
        else:
            await self.send_to(text_data=json.dumps(message))

    async def _receive_message(self, timeout: float) -> Any:
        output = await self.receive_output(timeout)
        assert output["type"] == "websocket.send", output
        return self._decoded(output)

    def _decoded(self, output: dict[str, Any]) -> Any:
        """A frame's message: MessagePack on a MessagePack socket, else JSON. A text frame on
        a MessagePack socket is the server breaking the protocol (section 15; a client
        closes 1002): ``AssertionError``, so no test accepts one unnoticed."""
        if self.encoding == wire.MSGPACK:
            assert output.get("bytes") is not None, f"a text frame on a MessagePack socket: {output}"
            return wire.loads(output["bytes"])
        return json.loads(output.get("text") or "null")
