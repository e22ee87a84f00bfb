"""The client's rules without I/O: options, states, reconnection policy and backoff.

Everything here is a pure function or an immutable value, so each rule of
docs/python-client.md (the same rules as the browser client's, docs/client.md)
is tested on plain values. Times are in seconds (the browser client uses
milliseconds).
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "TRANSITIONS",
    "Options",
    "State",
    "backoff_delay",
    "check_transition",
    "is_final_close_code",
    "should_reconnect",
]


class State(enum.Enum):
    """The client's lifecycle, in the order a connection normally goes through it.

    ``RECONNECTING`` covers both the wait before a retry and failed attempts.
    """

    IDLE = "idle"
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


# Allowed transitions (the browser client's table); anything else is a bug.
TRANSITIONS: Final[dict[State, frozenset[State]]] = {
    State.IDLE: frozenset({State.CONNECTING, State.CLOSED}),
    State.CONNECTING: frozenset({State.OPEN, State.RECONNECTING, State.CLOSED}),
    State.OPEN: frozenset({State.RECONNECTING, State.CLOSED}),
    State.RECONNECTING: frozenset({State.CONNECTING, State.CLOSED}),
    State.CLOSED: frozenset({State.CONNECTING, State.CLOSED}),
}


def check_transition(current: State, new: State) -> None:
    """Raise ``RuntimeError`` naming the allowed states when ``current -> new`` is not in the table."""
    allowed = TRANSITIONS[current]
    if new not in allowed:
        expected = ", ".join(sorted(s.value for s in allowed))
        raise RuntimeError(
            f"wsmanager_client: illegal state change {current.value} -> {new.value}; "
            f"expected one of {expected}"
        )


NORMAL: Final = 1000
PROTOCOL_ERROR: Final = 1002
UNSUPPORTED_DATA: Final = 1003
ABNORMAL: Final = 1006
POLICY_VIOLATION: Final = 1008
RESUMED_ELSEWHERE: Final = 4409  # another connection resumed this session


def is_final_close_code(code: int) -> bool:
    """Whether the default policy gives up after this close code.

    1000 (the server ended the session on purpose), 1003 and 1008 (the server
    refuses this client) and 4400-4499 (application "client error" codes
    such as 4403, and 4409: another connection resumed this session).
    Everything else, 1006 included, is retried.
    """
    return code in (NORMAL, UNSUPPORTED_DATA, POLICY_VIOLATION) or 4400 <= code <= 4499


ShouldReconnect = Callable[[int, str], bool]


def _positive(name: str, value: float | None, *, allow_none: bool) -> None:
    if value is None:
        if not allow_none:
            raise ValueError(f"{name} must be a number, not None")
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")


@dataclass(frozen=True, slots=True)
class Options:
    """The client's settings; each one mirrors the browser client's option of the same meaning.

    Durations are seconds. ``None`` (or ``math.inf``) for ``timeout``,
    ``connect_timeout`` and ``max_reconnect_attempts`` means no limit;
    ``heartbeat_interval=None`` disables the heartbeat. The last three bound
    what the server may send (:mod:`.limits`; the browser has no such
    options); ``None`` lifts a bound.
    """

    timeout: float | None = 30.0
    connect_timeout: float | None = 10.0
    reconnect: bool = True
    reconnect_delay: float = 1.0
    reconnect_factor: float = 2.0
    reconnect_max_delay: float = 30.0
    reconnect_jitter: float = 0.5
    max_reconnect_attempts: float | None = None
    should_reconnect: ShouldReconnect | None = None
    heartbeat_interval: float | None = 10.0
    heartbeat_timeout: float = 5.0
    queue_size: int = 100
    queue_calls: bool = True
    fail_fast: bool = False
    recover: bool = True
    max_message_size: int | None = 1024 * 1024
    max_batch_size: int | None = 100
    max_concurrent_handlers: int | None = 100
    #: ``"json"`` (text frames) or ``"msgpack"`` (binary frames, ``bytes`` as bytes; needs
    #: ``wsmanager-client[msgpack]`` and a server that accepts it: docs/protocol.md, section 15).
    encoding: str = "json"

    def __post_init__(self) -> None:
        for name in ("timeout", "connect_timeout", "heartbeat_interval"):
            _positive(name, getattr(self, name), allow_none=True)
        limit = self.max_reconnect_attempts
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int | float) or not limit >= 0
        ):
            raise ValueError(f"max_reconnect_attempts must be a number of attempts or None, not {limit!r}")
        for name in ("reconnect_delay", "reconnect_max_delay", "heartbeat_timeout"):
            _positive(name, getattr(self, name), allow_none=False)
        if not isinstance(self.reconnect_factor, int | float) or self.reconnect_factor < 1:
            raise ValueError(f"reconnect_factor must be at least 1, not {self.reconnect_factor!r}")
        if not isinstance(self.reconnect_jitter, int | float) or not 0 <= self.reconnect_jitter <= 1:
            raise ValueError(f"reconnect_jitter must be between 0 and 1, not {self.reconnect_jitter!r}")
        if isinstance(self.queue_size, bool) or not isinstance(self.queue_size, int) or self.queue_size < 0:
            raise ValueError(f"queue_size must be a non-negative integer, not {self.queue_size!r}")
        for name in ("max_message_size", "max_batch_size", "max_concurrent_handlers"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None (no limit), not {value!r}")
        if self.encoding not in ("json", "msgpack"):
            raise ValueError(f'encoding must be "json" or "msgpack", not {self.encoding!r}')
        if not isinstance(self.recover, bool):
            raise TypeError(f"recover must be True or False, not {self.recover!r}")
        if self.should_reconnect is not None and not callable(self.should_reconnect):
            raise TypeError("should_reconnect must be a callable (code, reason) -> bool")


def backoff_delay(attempt: int, options: Options, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before attempt ``attempt`` (1-based).

    ``min(reconnect_max_delay, reconnect_delay * reconnect_factor ** (attempt - 1))``,
    minus a random fraction of up to ``reconnect_jitter`` of it: with the
    defaults 0.5-1 s, 1-2 s, 2-4 s, ... up to 15-30 s. ``rand`` returns a
    float in [0, 1) (a parameter so that tests can pin it).
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, not {attempt}")
    try:
        grown = options.reconnect_delay * options.reconnect_factor ** (attempt - 1)
    except OverflowError:
        grown = math.inf
    base = min(options.reconnect_max_delay, grown)
    return base * (1 - options.reconnect_jitter * rand())


def should_reconnect(options: Options, failed_attempts: int, code: int, reason: str) -> bool:
    """The one decision after any loss of the connection (before ``close()`` is considered).

    No when ``reconnect`` is off or ``max_reconnect_attempts`` failed attempts
    in a row were made; else ``should_reconnect(code, reason)`` when given;
    else the close-code policy of :func:`is_final_close_code`.
    """
    limit = options.max_reconnect_attempts
    if not options.reconnect or (limit is not None and failed_attempts >= limit):
        return False
    if options.should_reconnect is not None:
        return bool(options.should_reconnect(code, reason))
    return not is_final_close_code(code)
