"""Per-connection limits: the size of an incoming frame, a token bucket for
incoming messages, a probe of how many bytes a slow client has left unread
in the server's send buffer, and a way to close with the limit's code on
daphne (which refuses 1008, 1009, 1011 and 1013 through ASGI).

The bucket and the probe are cheap enough to run on every frame: the bucket
is two floats and a clock read; the probe reads two attributes of the
transport it found once.
"""

from __future__ import annotations

import functools
import time
from typing import Any

__all__ = ["TokenBucket", "send_backlog_probe", "send_close_frame", "too_big"]


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

    def take(self, cost: int = 1) -> bool:
        """Spend ``cost`` tokens if there are that many; False means over the limit.

        All or nothing: a refused cost spends no token, so a large cost that
        does not fit does not hold up smaller ones after it. A cost above
        ``burst`` never fits.
        """
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False


def too_big(data: str | bytes, limit: int | None) -> bool:
    """Whether a frame is over ``limit`` bytes (text measured as UTF-8); None: no limit.

    Text is encoded only when ``len * 4`` (a bound of its UTF-8 size) is over
    the limit, so frames well under it cost one comparison.
    """
    if limit is None:
        return False
    if isinstance(data, bytes):
        return len(data) > limit
    return len(data) * 4 > limit and len(data.encode("utf-8", "surrogatepass")) > limit


def _twisted_backlog(transport: Any) -> int:
    buffer: bytes = transport.dataBuffer
    return len(buffer) - int(transport.offset) + int(transport._tempDataLen)


def _server_protocol(send: Any) -> Any:
    """The daphne protocol object behind an ASGI ``send``, or None.

    daphne's ``send`` is a ``partial`` of its reply method bound to the
    Twisted protocol. Channels' session middleware (part of
    ``AuthMiddlewareStack``) wraps it in a method of an object holding it as
    ``real_send``; this looks through such layers.
    """
    for _ in range(8):  # middleware layers; bounded in case of a cycle
        inner = getattr(getattr(send, "__self__", None), "real_send", None)
        if inner is None:
            break
        send = inner
    if not isinstance(send, functools.partial) or not send.args:
        return None
    return send.args[0]


def send_backlog_probe(send: Any) -> Any:
    """A function returning the bytes queued to the client and not yet sent.

    ASGI gives no way to see a client's backlog, so this looks behind
    daphne's ``send`` for the TCP transport's write buffer. Returns ``None``
    when the server is not daphne-on-Twisted (the probe is then unavailable
    and only the outgoing queue bound applies).
    """
    transport = getattr(_server_protocol(send), "transport", None)
    needed = ("dataBuffer", "offset", "_tempDataLen")
    if transport is None or not all(hasattr(transport, name) for name in needed):
        return None
    return functools.partial(_twisted_backlog, transport)


def send_close_frame(send: Any, code: int, reason: str | None) -> bool:
    """Write a close frame with ``code`` directly on daphne's protocol; False if unavailable.

    daphne closes through autobahn's ``sendClose``, which refuses every code
    but 1000 and 3000-4999, so 1008, 1009, 1011 and 1013 cannot go through
    ASGI there. autobahn's ``sendCloseFrame`` (what daphne itself uses to
    close with 1011) writes any code and starts the closing handshake.
    """
    write = getattr(_server_protocol(send), "sendCloseFrame", None)
    if write is None:
        return False
    reason_utf8 = (reason or "").encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    write(code=int(code), reasonUtf8=reason_utf8 or None, isReply=False)
    return True
