"""Per-connection limits: a token bucket for incoming messages, and a probe of
how many bytes a slow client has left unread in the server's send buffer.

Both are cheap enough to run on every frame: the bucket is two floats and a
clock read; the probe reads two attributes of the transport it found once.
"""

from __future__ import annotations

import functools
import time
from typing import Any

__all__ = ["TokenBucket", "send_backlog_probe"]


class TokenBucket:
    """Allows ``rate`` messages per second on average and bursts of ``burst``.

    Starts full. Not thread-safe (one bucket per socket, used on its loop).
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = time.monotonic()

    def take(self) -> bool:
        """Spend one token if there is one; False means over the limit."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def _twisted_backlog(transport: Any) -> int:
    buffer: bytes = transport.dataBuffer
    return len(buffer) - int(transport.offset) + int(transport._tempDataLen)


def send_backlog_probe(send: Any) -> Any:
    """A function returning the bytes queued to the client and not yet sent.

    ASGI gives no way to see a client's backlog, so this looks behind
    daphne's ``send`` (a ``partial`` of the server's reply method bound to
    the Twisted protocol) for the TCP transport's write buffer. Returns
    ``None`` when the server is not daphne-on-Twisted (the probe is then
    unavailable and only the outgoing queue bound applies).
    """
    if not isinstance(send, functools.partial) or not send.args:
        return None
    transport = getattr(send.args[0], "transport", None)
    needed = ("dataBuffer", "offset", "_tempDataLen")
    if transport is None or not all(hasattr(transport, name) for name in needed):
        return None
    return functools.partial(_twisted_backlog, transport)
