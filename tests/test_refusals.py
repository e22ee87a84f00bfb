"""Refused handshakes say why (``wsmanager.connection._refusals``): the HTTP status and reason
where the scope offers ``websocket.http.response``, a plain ``websocket.close``
elsewhere, and one WARNING line per kind and handler per minute on
``wsmanager.connection._refusals``, also when nothing configured logging."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from tests.servers import ROOT
from wsmanager import RejectConnection, RpcHandler, route, websocket_app
from wsmanager.connection._refusals import MAX_ECHO, Refusal, echo, log_refusal, reset, send_refusal
from wsmanager.exceptions import RegistryUnavailable
from wsmanager.node import Node
from wsmanager.observe import _counters as counters
from wsmanager.testing import HandshakeRefused, RpcCommunicator


class Guarded(RpcHandler):
    """Only https://ok.example; authenticated users; ``authorize`` and ``on_connect``
    answer as the query string says."""

    handler_name = "tests.refusals.guarded"
    allowed_origins = ["https://ok.example"]

    async def authorize(self) -> bool:
        query = self.scope["query_string"]
        if query == b"authorize=raise":
            raise RuntimeError("a bug in authorize")
        return query != b"authorize=no"

    async def on_connect(self) -> bool | None:
        query = self.scope["query_string"]
        if query == b"connect=no":
            return False
        if query == b"connect=reject":
            raise RejectConnection("this room is closed")
        if query == b"connect=reject-code":
            raise RejectConnection("this room is closed", code=4403)
        if query == b"connect=raise":
            raise RuntimeError("a bug in on_connect")
        return None


class MembersOnly(RpcHandler):
    handler_name = "tests.refusals.members"
    require_authenticated = True


application = websocket_app(
    [route("ws/guarded/", Guarded), route("ws/members/", MembersOnly)],
    auth=False,
)
OK = "https://ok.example"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    tick = Clock()
    reset(clock=tick)
    return tick


async def refused(path: str, origin: str | None = OK) -> HandshakeRefused:
    client = RpcCommunicator(application, path, origin=origin)
    with pytest.raises(HandshakeRefused) as info:
        async with client:
            pass
    await client.disconnect()
    assert client.refusal is info.value
    return info.value


@pytest.mark.parametrize(
    ("path", "origin", "status", "reason"),
    [
        ("/ws/guarded/", "http://evil.example", 403, "origin 'http://evil.example' is not allowed"),
        ("/ws/members/", None, 403, "authentication required"),
        ("/ws/guarded/?authorize=no", OK, 403, "not authorized"),
        ("/ws/guarded/?authorize=raise", OK, 500, "server error"),
        ("/ws/guarded/?connect=no", OK, 403, "refused by on_connect"),
        ("/ws/guarded/?connect=reject", OK, 403, "this room is closed"),
        ("/ws/guarded/?connect=raise", OK, 500, "server error"),
        ("/ws/nowhere/", OK, 404, "no WebSocket route for this path"),
    ],
    ids=[
        "origin",
        "anonymous",
        "authorize",
        "authorize-raised",
        "on_connect",
        "reject",
        "raised",
        "no-route",
    ],
)
async def test_a_refused_handshake_answers_its_status_and_reason(
    path: str, origin: str | None, status: int, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With ``websocket.http.response`` in the scope the refusal is an HTTP response
    with the status and the reason; the log says it too, at WARNING."""
    with caplog.at_level(logging.WARNING, "wsmanager.refusals"):
        refusal = await refused(path, origin)
    assert (refusal.status, refusal.code, refusal.reason) == (status, None, reason)
    [line] = [r for r in caplog.records if r.name == "wsmanager.refusals"]
    assert line.levelno == logging.WARNING
    assert f"HTTP {status}: {reason}" in line.getMessage()
    assert counters.stats()["refused_handshake"] == 1


async def test_the_log_says_what_was_allowed_and_where_it_came_from(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An origin refusal names the patterns in force and their source; the client is told less."""
    with caplog.at_level(logging.WARNING, "wsmanager.refusals"):
        refusal = await refused("/ws/guarded/", "http://evil.example")
    assert "ok.example" not in refusal.reason
    message = caplog.records[-1].getMessage()
    assert "allowed by the handler's allowed_origins: ['https://ok.example']" in message
    assert "(tests.refusals.guarded)" in message


async def test_with_no_origin_patterns_of_its_own_the_log_names_allowed_hosts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with override_settings(ALLOWED_HOSTS=["chat.example"]), caplog.at_level(logging.WARNING):
        await refused("/ws/members/", "http://evil.example")
    assert "allowed by ALLOWED_HOSTS: ['chat.example']" in caplog.records[-1].getMessage()


async def test_a_registry_that_cannot_be_reached_is_503_and_its_detail_stays_in_the_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The client learns to come back later, not where Redis lives."""

    async def down(self: Any, node: Node, address: str | None, **entry: Any) -> bool:
        raise RegistryUnavailable("Redis at 10.0.0.9 down")

    monkeypatch.setattr(Guarded, "_sign_in", down)
    with caplog.at_level(logging.WARNING, "wsmanager.refusals"):
        refusal = await refused("/ws/guarded/")
    assert (refusal.status, refusal.reason) == (503, "registry unavailable")
    assert "10.0.0.9" in caplog.records[-1].getMessage()


async def test_a_refusal_after_the_handshake_is_a_close_with_code_and_reason() -> None:
    """``RejectConnection(code=...)``: accepted, then closed; the helper reports the code."""
    refusal = await refused("/ws/guarded/?connect=reject-code")
    assert (refusal.status, refusal.code, refusal.reason) == (None, 4403, "this room is closed")
    assert str(refusal) == "socket refused: closed with 4403: this room is closed"


@pytest.mark.parametrize("path", ["/ws/members/", "/ws/nowhere/"])
async def test_without_the_extension_the_refusal_is_a_plain_close(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """daphne's way: ``websocket.close`` before accept (HTTP 403, no body); Channels'
    own communicator sees the usual ``(False, 1000)``, and the log says 403, what the
    client got, even for a path that has no route (404 where it can be said)."""
    comm = WebsocketCommunicator(application, path)
    with caplog.at_level(logging.WARNING, "wsmanager.refusals"):
        assert await comm.connect() == (False, 1000)
    await comm.disconnect()
    assert " with HTTP 403: " in caplog.records[-1].getMessage()


async def test_send_refusal_writes_an_http_response_only_where_offered() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    refusal = Refusal("origin", "origin 'x' is not allowed", status=403)
    await send_refusal({"extensions": {"websocket.http.response": {}}}, send, refusal)
    start, body = sent
    assert (start["type"], start["status"]) == ("websocket.http.response.start", 403)
    assert (b"content-type", b"text/plain; charset=utf-8") in start["headers"]
    assert body == {"type": "websocket.http.response.body", "body": b"origin 'x' is not allowed\n"}
    sent.clear()
    await send_refusal({"extensions": {}}, send, refusal)
    assert sent == [{"type": "websocket.close", "reason": "origin 'x' is not allowed"}]


def test_one_line_per_kind_and_handler_per_minute_then_the_count_skipped(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A client refused a thousand times costs one line a minute per kind and handler."""
    origin = Refusal("origin", "origin 'x' is not allowed")
    anonymous = Refusal("anonymous", "authentication required")
    with caplog.at_level(logging.WARNING, "wsmanager.refusals"):
        a, b = {"path": "/ws/a/"}, {"path": "/ws/b/"}
        assert log_refusal(origin, a, "a") is True
        assert [log_refusal(origin, a, "a") for _ in range(999)] == [False] * 999
        assert log_refusal(origin, b, "b") is True  # another handler
        assert log_refusal(anonymous, a, "a") is True  # another kind
        clock.now += 60
        assert log_refusal(origin, a, "a") is True
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4
    assert messages[-1].endswith("(and 999 more like it since the last such line)")


def test_what_the_client_sent_is_quoted_and_cut_short() -> None:
    assert echo("http://a\r\nb") == "'http://a\\r\\nb'"
    assert echo(None) == "none"
    long = "x" * (MAX_ECHO + 50)
    assert echo(long) == repr("x" * MAX_ECHO) + "..."


def test_a_refusal_is_printed_with_no_logging_configured() -> None:
    """Django's default LOGGING and no server configuring the root logger (uvicorn,
    hypercorn, granian): Python's last-resort handler prints the WARNING to stderr."""
    script = textwrap.dedent(
        """
        import asyncio
        import django
        from django.conf import settings
        settings.configure(INSTALLED_APPS=["wsmanager"], ALLOWED_HOSTS=["ok.example"])
        django.setup()
        from wsmanager import RpcHandler, route, websocket_app
        from wsmanager.testing import RpcCommunicator

        class H(RpcHandler):
            handler_name = "bare"

        app = websocket_app([route("ws/", H)], auth=False)

        async def main():
            client = RpcCommunicator(app, "/ws/", origin="http://evil.example")
            print(await client.connect())
            await client.disconnect()

        asyncio.run(main())
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "(False, 403)"
    assert (
        "wsmanager refused a WebSocket handshake to '/ws/' (bare) with HTTP 403: "
        "origin 'http://evil.example' is not allowed; allowed by ALLOWED_HOSTS: ['ok.example']"
    ) in run.stderr
