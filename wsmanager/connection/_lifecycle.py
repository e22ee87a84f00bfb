"""A socket's life cycle: its id, four states and the only moves between them,
and the close codes it may end with.

::

    CONNECTING ──accept──▶ OPEN ──close──▶ CLOSING ──release──▶ CLOSED
        │                                     ▲                    ▲
        ├──────────────refuse─────────────────┘                    │
        └──────────────refused before anything was registered──────┘
                          OPEN ──client went away──────────────────┘

* CONNECTING: the handshake is under way (admission, ``on_connect``).
* OPEN: accepted; frames flow both ways.
* CLOSING: the server decided to close; nothing more is written but the
  close frame, incoming frames are dropped and counted.
* CLOSED: released: out of the registry, its groups and the node.

Every change goes through :meth:`Lifecycle.move`, which checks it against
:data:`TRANSITIONS` and logs it at DEBUG on ``wsmanager.connection._lifecycle``; a move
the table does not allow raises :class:`InvalidTransition` (a bug in the
library, never the client's doing). A move to the current state is a no-op
that returns False, so that closing twice is harmless.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Mapping

__all__ = [
    "TRANSITIONS",
    "CloseCode",
    "InvalidTransition",
    "Lifecycle",
    "State",
    "chosen_close_code",
    "new_socket_id",
]

logger = logging.getLogger(__name__)


def new_socket_id() -> str:
    """A fresh socket id: 256 random bits, URL-safe base64 (43 characters).

    Never starts with ``-``, so that an id is never taken for an option on a
    command line (redrawn, 1 time in 64).
    """
    while True:
        sid = secrets.token_urlsafe(32)
        if sid[0] != "-":
            return sid


class State(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class CloseCode(enum.IntEnum):
    """Close codes the library uses (see docs/protocol.md)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    #: Application range 4400-4499: the client must not reconnect by itself.
    FORBIDDEN = 4403
    #: Another connection resumed this socket's session (connection recovery).
    RESUMED_ELSEWHERE = 4409
    TOO_MANY_CONNECTIONS = 4429


def chosen_close_code(value: object) -> int:
    """The code of a close an endpoint chose to make: ``value`` when it is 1000 or in
    3000-4999 (RFC 6455 section 7.4.2: what an application may send, and what a
    browser's ``WebSocket.close`` accepts), 1000 for anything else (no code, a
    bool, a code reserved for what the protocol itself reports, such as 1006)."""
    if isinstance(value, int) and not isinstance(value, bool) and (value == 1000 or 3000 <= value <= 4999):
        return value
    return int(CloseCode.NORMAL)


TRANSITIONS: Mapping[State, frozenset[State]] = {
    State.CONNECTING: frozenset({State.OPEN, State.CLOSING, State.CLOSED}),
    State.OPEN: frozenset({State.CLOSING, State.CLOSED}),
    State.CLOSING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


class InvalidTransition(RuntimeError):
    """A move :data:`TRANSITIONS` does not allow."""

    def __init__(self, current: State, target: State) -> None:
        self.current = current
        self.target = target
        super().__init__(f"cannot move from {current.value} to {target.value}")

    def __reduce__(self) -> tuple[type[InvalidTransition], tuple[State, State]]:
        return (type(self), (self.current, self.target))


class Lifecycle:
    """The state of one socket; ``label`` names it in the log lines."""

    __slots__ = ("label", "state", "was_open")

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.state = State.CONNECTING
        #: Whether the socket was ever OPEN (``on_disconnect`` runs only then).
        self.was_open = False

    def move(self, target: State) -> bool:
        """Move to ``target``; False if already there. Raises :class:`InvalidTransition`."""
        current = self.state
        if target is current:
            return False
        if target not in TRANSITIONS[current]:
            raise InvalidTransition(current, target)
        self.state = target
        if target is State.OPEN:
            self.was_open = True
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("socket %s: %s -> %s", self.label, current.value, target.value)
        return True

    @property
    def ending(self) -> bool:
        """CLOSING or CLOSED: nothing more is written to the socket."""
        return self.state is State.CLOSING or self.state is State.CLOSED
