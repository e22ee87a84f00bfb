"""A clock the end-to-end tests control, for the token buckets of a server process.

The rate limits (``wsmanager.connection._limits``) read the time through their module's
``time`` attribute; the unit tests replace it with a fake (tests/test_limits.py).
A test app that calls :func:`install` does the same in its server process: every
bucket there then reads a :class:`StoppedClock`, which stands still until a test
moves it. No token comes back between two frames, however slowly a loaded machine
sends or reads them, so "a burst of 240 gets 40 refusals" holds exactly; a test
that needs the tokens back says so with :func:`advance`.

:func:`with_clock` wraps an ASGI app so that ``POST /test/clock?advance=<seconds>``
moves the clock (answered with its new reading); everything else goes to the app.
``tests.e2e.clocked_demo:application`` is the demo so wrapped; the hostile app
(tests/e2e/hostile_app.py) installs it too. The event loop and everything else
keep the real clock.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from tests.e2e.client import http
from tests.servers import ServerProcess
from wsmanager.connection import _limits as limits

__all__ = ["CLOCK", "PATH", "StoppedClock", "advance", "install", "with_clock"]

PATH = "/test/clock"


class StoppedClock:
    """Stands in for the ``time`` module of wsmanager.connection._limits: moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


CLOCK = StoppedClock()


def install() -> None:
    """Put :data:`CLOCK` under every token bucket of this process."""
    limits.time = CLOCK  # type: ignore[assignment]


def with_clock(app: Any) -> Any:
    """``app``, plus ``POST /test/clock?advance=<seconds>``."""

    async def serve(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        status = 405 if scope["method"] != "POST" else 200
        if status == 200:
            CLOCK.now += float(query.get("advance", ["0"])[0])
        body = json.dumps({"now": CLOCK.now}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return serve


async def advance(server: ServerProcess, seconds: float) -> float:
    """Move the clock of ``server``'s token buckets on by ``seconds``; its new reading."""
    response = await http("POST", server, PATH, params={"advance": seconds})
    assert response.status_code == 200, response.text
    now: float = response.json()["now"]
    return now
