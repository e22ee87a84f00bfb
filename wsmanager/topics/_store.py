"""The process's history store, and each topic's bounds.

:func:`get_history` builds the store on first use: on Redis when the
registry is the Redis registry (the same database and prefix), in memory
otherwise. :func:`bounds` finds a topic's pattern among its handler's
``topics`` (the catalog's class) to apply the pattern's history bounds;
in a process that never imported the handler's class the settings'
defaults apply (import your handlers' module in workers that publish).
"""

from __future__ import annotations

from typing import Any

from .. import _handler_classes as catalog
from .. import _state
from .._conf import get_settings
from ..exceptions import ConfigurationError
from ..registry import get_registry
from ._history import History, InMemoryHistory
from ._patterns import MAX_TOPIC_LENGTH, Topic, match

__all__ = ["bounds", "check_name", "get_history", "reset_history"]

_history: History | None = None


def get_history() -> History:
    """The process's history store (see the module)."""
    global _history
    if _history is None:
        registry: Any = get_registry()
        if getattr(registry, "shared", False) and hasattr(registry, "_redis") and hasattr(registry, "prefix"):
            from ._redis import RedisHistory

            _history = RedisHistory(registry._redis, registry.prefix)
        else:
            _history = InMemoryHistory()
    return _history


def reset_history() -> None:
    """Forget the store (tests; the in-memory history goes with it)."""
    global _history
    _history = None


_state.owns(__name__, reset_history)


def check_name(name: Any) -> str:
    """``name`` if it is a topic name a server may publish to; ValueError otherwise."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a topic name is a non-empty string, not {name!r}")
    if len(name) > MAX_TOPIC_LENGTH:
        raise ValueError(f"a topic name has at most {MAX_TOPIC_LENGTH} characters")
    return name


def pattern_of(handler_name: str, name: str) -> Topic | None:
    """The pattern of ``handler_name``'s class that ``name`` matches; None when this
    process does not know the class. ValueError when the class has no such pattern."""
    try:
        cls = catalog.handler_class(handler_name)
    except ConfigurationError:
        return None
    found = match(getattr(cls, "topics", ()), name)
    if found is None:
        raise ValueError(f"no topic pattern of handler {handler_name!r} matches {name!r}")
    return found[0]


def bounds(pattern: Topic | None) -> tuple[int, float | None]:
    """(size, ttl) of a pattern's history: its own, else the settings'."""
    conf = get_settings()
    size = (
        conf.topic_history_size if pattern is None or pattern.history_size is None else pattern.history_size
    )
    ttl = conf.topic_history_ttl if pattern is None or pattern.history_ttl is None else pattern.history_ttl
    return size, ttl
