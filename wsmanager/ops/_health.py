"""Whether this process is draining: the one fact readiness needs that no store knows.

Code that shuts the process down gracefully calls :func:`set_draining` as
it starts to refuse new sockets; from then on the readiness view
(:func:`wsmanager.ops.probes.readiness`) answers 503 ``{"ready": false, "reason":
"draining"}``, so that load balancers stop sending new clients here while
the open sockets finish. Liveness is unaffected: a draining process is
healthy.

Guarantees: the flag is per process and only changes through these
functions. Non-guarantees: nothing here refuses sockets or closes them;
that is the drain's job.
"""

from __future__ import annotations

from .. import _state

__all__ = ["is_draining", "set_draining"]

_draining = False


def set_draining(draining: bool = True) -> None:
    """Mark the process as draining (or, with False, as serving again)."""
    global _draining
    _draining = bool(draining)


def is_draining() -> bool:
    """Whether :func:`set_draining` marked the process as draining."""
    return _draining


def _forget() -> None:
    set_draining(False)


_state.owns(__name__, _forget)
