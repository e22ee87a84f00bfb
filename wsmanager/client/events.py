"""What the client's state callbacks receive: one frozen value per kind of event.

The fields are the browser client's event fields (docs/client.md, "Events"),
in snake case and with delays in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Closed", "Connected", "Reconnected", "Reconnecting"]


@dataclass(frozen=True, slots=True)
class Connected:
    """``rpc.connected`` arrived: on every connection. ``reconnect`` is false on a session's first."""

    id: str | None
    reconnect: bool


@dataclass(frozen=True, slots=True)
class Reconnected:
    """After :class:`Connected`, on every connection of a session but its first."""

    id: str | None
    previous_id: str | None


@dataclass(frozen=True, slots=True)
class Reconnecting:
    """Attempt ``attempt`` (1, 2, ...) starts in ``delay`` seconds; ``code``/``reason`` ended the last one."""

    attempt: int
    delay: float
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Closed:
    """An open connection closed (``will_reconnect`` true), or the client closed or gave up (false).

    Failed attempts that never opened give :class:`Reconnecting` only, except
    the last one when the client gives up.
    """

    code: int
    reason: str
    was_clean: bool
    will_reconnect: bool
