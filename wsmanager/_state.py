"""The process-wide state, in one place: what each owner must forget, and one reset.

wsmanager keeps a few things per process (the registry backend, the node,
the counters, presence's gathered changes, ...). Each stays in the module
that owns it, next to the code that uses it, and that module declares here,
once, at import, how to forget it (:func:`owns`). :func:`reset` forgets all
of it, in the order the owners were imported, and is what
:func:`wsmanager.testing.reset` (and the pytest plugin, around every test)
runs; no test reaches into a private global.

Guarantees: every owner registered is reset, each once per call, even when
one of them raises (the first error is raised after all ran). Non-guarantees:
an owner never imported has nothing to forget and is not listed; the
handler classes (class definitions) and the observers the user installed
(:mod:`wsmanager.observe`, ``ops.metrics.install``) are not state to reset:
whoever installed an observer removes it.

This module imports nothing from wsmanager, so that every layer may register.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["disown", "owners", "owns", "reset"]

_resets: dict[str, Callable[[], None]] = {}


def owns(owner: str, forget: Callable[[], None]) -> None:
    """Declare that module ``owner`` keeps process-wide state that ``forget`` drops.
    Registering an owner again replaces its function (a reloaded module)."""
    _resets[owner] = forget


def disown(owner: str) -> None:
    """Forget ``owner``'s registration (tests of this module); unknown owners are ignored."""
    _resets.pop(owner, None)


def owners() -> list[str]:
    """The registered owners, in the order :func:`reset` runs them."""
    return list(_resets)


def reset() -> None:
    """Forget all process-wide state (between tests, or after changing settings)."""
    errors: list[BaseException] = []
    for forget in list(_resets.values()):
        try:
            forget()
        except Exception as exc:  # every owner runs; the first error is raised after
            errors.append(exc)
    if errors:
        raise errors[0]
