"""A socket's last activity: the Unix time of its last frame in or out.

One :class:`Activity` per socket, held by the handler (``handler.activity``)
and shared with the two places that see its frames: its intake
(:class:`~wsmanager.connection._limits.Intake`, each frame in) and its
writer (:class:`~wsmanager.connection._writer.Writer`, each frame out). The
heartbeat (:mod:`wsmanager.node._heartbeat`) reads ``activity.last`` and
publishes it to the registry (what ``manage.py wsmanager list`` and the
admin page show as last active).

Guarantees: one attribute write per frame, nothing else (no lock, no
call). Non-guarantees: the time is the wall clock (``time.time``), so it
may step; a frame refused before the intake (a socket not yet open) leaves
it unchanged.
"""

from __future__ import annotations

__all__ = ["Activity"]


class Activity:
    """The socket's last activity: :attr:`last`, 0.0 before any frame."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        #: Unix time of the socket's last frame in or out (0.0 before any).
        self.last = 0.0
