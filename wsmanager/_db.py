"""Database connection hygiene without a thread hop per message.

Channels closes stale database connections before every message it
dispatches, which costs a hop to the sync thread per frame. wsmanager does
the same clean-up, but only while this process has used the database since
the last clean-up: a signal marks the first new connection, and the hop
clears the mark once no connection is left open in the sync thread.

Guarantee: a handler that uses the ORM through ``sync_to_async`` /
``database_sync_to_async`` (thread-sensitive, the default) gets the same
``CONN_MAX_AGE`` and broken-connection clean-up as with plain Channels.
Connections opened in other threads (``thread_sensitive=False``) are not
covered, as in Channels.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connections
from django.db.backends.signals import connection_created

from . import _state

__all__ = ["close_old_connections_if_used", "forget_use", "mark_used"]

_used = False


def mark_used(**_: Any) -> None:
    """Note that a database connection exists (connected to ``connection_created``)."""
    global _used
    _used = True


def forget_use() -> None:
    """Forget that the database was used (tests: in-memory SQLite never really closes)."""
    global _used
    _used = False


connection_created.connect(mark_used, dispatch_uid="wsmanager._db.mark_used")


def _close_and_check() -> bool:
    close_old_connections()
    return any(conn.connection is not None for conn in connections.all(initialized_only=True))


async def close_old_connections_if_used() -> None:
    """Close stale connections in the sync thread, only if any was opened."""
    global _used
    if _used:
        _used = await sync_to_async(_close_and_check)()


_state.owns(__name__, forget_use)
