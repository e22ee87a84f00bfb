"""The handler catalog: every concrete handler class of this process, by name.

A handler class registers itself when it is defined (see
:class:`wsmanager.handlers._handler.WebSocketHandler`), under its ``handler_name``.
Presence looks up a class's ``on_presence`` hook here, and the management
command resolves names given on its command line.

Guarantees: a name maps to the last class defined with it (one handler on
two routes, or a module re-imported in tests). Non-guarantee: a process
only knows the classes whose modules it imported; another process (a
management command) may know fewer.
"""

from __future__ import annotations

from typing import Any

from .exceptions import ConfigurationError

__all__ = ["handler_class", "handler_names", "name_of", "register"]

_classes: dict[str, type[Any]] = {}


def name_of(cls: type[Any]) -> str:
    """The handler name a class declares: its own ``handler_name``, else
    ``"module.QualName"`` (a ``handler_name`` inherited from a base class does
    not count: each class gets its own namespace unless it names one)."""
    own = cls.__dict__
    if "handler_name" in own:
        return str(own["handler_name"])
    return f"{cls.__module__}.{cls.__qualname__}"


def register(handler_name: str, cls: type[Any]) -> None:
    """Make ``cls`` the class known under ``handler_name``."""
    _classes[handler_name] = cls


def handler_class(handler_name: str) -> type[Any]:
    """The class registered under ``handler_name``; ConfigurationError if none is."""
    try:
        return _classes[handler_name]
    except KeyError:
        known = ", ".join(sorted(_classes)) or "none"
        raise ConfigurationError(f"no handler is named {handler_name!r} (known: {known})") from None


def handler_names() -> list[str]:
    """Every registered name, sorted."""
    return sorted(_classes)
