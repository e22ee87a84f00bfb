"""Per-connection limits: the size of an incoming frame and a token bucket for
incoming messages, together an :class:`Intake` that judges each frame; a
probe of how many bytes a slow client has left unread in the server's send
buffer, and :func:`send_close`, which closes with the limit's code on daphne
too (it refuses 1008, 1009, 1011 and 1013 through ASGI).

The bucket and the probe are cheap enough to run on every frame: the bucket
is two floats and a clock read; the probe reads two attributes of the
transport it found once.
"""

from __future__ import annotations

import enum
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "Intake",
    "IntakeVerdict",
    "TokenBucket",
    "send_backlog_probe",
    "send_close",
    "send_close_frame",
    "too_big",
]

logger = logging.getLogger("wsmanager.handler")


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


class IntakeVerdict(enum.Enum):
    """What :meth:`Intake.check` decided about one incoming frame."""

    OK = "ok"
    #: Over ``max_message_size``: close with 1009.
    TOO_BIG = "too big"
    #: Over the rate limit: refuse this frame (RPC answers -32002).
    LIMITED = "limited"
    #: Over the rate limit ``strikes`` times in a row: close with 1008.
    STRUCK_OUT = "struck out"


class Intake:
    """The incoming limits of one socket: frame size, then rate, then strikes.

    ``cost_of(frame)`` says how many tokens a frame takes (one by default;
    the RPC layer charges a batch per call); it is asked only for a frame
    within the size limit, and only when there is a rate limit. A frame that
    is not refused resets the strikes.
    """

    __slots__ = ("_bucket", "_strikes", "max_message_size", "strikes")

    def __init__(
        self, max_message_size: int | None, rate_limit: tuple[float, float] | None, strikes: int
    ) -> None:
        self.max_message_size = max_message_size
        self._bucket = TokenBucket(*rate_limit) if rate_limit else None
        self.strikes = strikes
        self._strikes = 0

    def check(self, data: str | bytes, cost_of: Callable[[str | bytes], int] | None = None) -> IntakeVerdict:
        if too_big(data, self.max_message_size):
            return IntakeVerdict.TOO_BIG
        cost = 1 if cost_of is None or self._bucket is None else cost_of(data)
        if self._bucket is not None and not self._bucket.take(cost):
            self._strikes += 1
            return IntakeVerdict.STRUCK_OUT if self._strikes >= self.strikes else IntakeVerdict.LIMITED
        self._strikes = 0
        return IntakeVerdict.OK


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


async def send_close(send: Any, code: int | None, reason: str | None, label: str = "") -> None:
    """Send ``websocket.close`` with ``code`` and ``reason`` through ``send``; never raises.

    Codes go out as plain ints (autobahn refuses an IntEnum). daphne
    refuses codes other than 1000 and 3000-4999 through ASGI, and drops the
    reason of every ASGI close; such closes are written on its protocol
    directly (:func:`send_close_frame`), so the client sees both. A close
    that cannot be sent at all is logged: the caller releases the socket
    whatever happens.
    """
    code = None if code is None else int(code)
    try:
        if code is not None and reason and send_close_frame(send, code, reason):
            return
        message: dict[str, Any] = {"type": "websocket.close"}
        if code is not None:
            message["code"] = code
        if reason:
            message["reason"] = reason
        await send(message)
    except Exception as exc:
        try:
            written = code is not None and send_close_frame(send, code, reason)
        except Exception:
            written = False
        if not written:
            logger.warning("socket %s: close %s could not be sent (%r)", label, code, exc)
