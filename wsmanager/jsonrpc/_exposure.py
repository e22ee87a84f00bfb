"""Which handler methods clients may call: the ``@rpc`` mark, and the
permission check a marked method may carry.

Only marked methods are callable, by their exposed name; hooks, private
names and the reserved ``rpc.`` prefix cannot be exposed. The mark is read
when the handler class is defined (see :class:`wsmanager.jsonrpc._dispatch.RpcHandler`),
into a :class:`wsmanager.jsonrpc._params.Method` per exposed name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from channels.db import database_sync_to_async

from wsmanager_client import protocol

from ..exceptions import RpcError
from ..observe._counters import Count, bump
from ._params import Permission

__all__ = ["MARK", "check_permission", "rpc"]

F = TypeVar("F", bound=Callable[..., Any])
#: The attribute ``@rpc`` sets: (exposed name, permission, thread_sensitive).
MARK = "__wsmanager_rpc__"


def rpc(
    func: F | None = None,
    *,
    name: str | None = None,
    permission: Permission | None = None,
    thread_sensitive: bool = True,
) -> Any:
    """Expose a handler method to clients, as ``@rpc`` or ``@rpc(name="x")``.

    The method may be ``async def`` (runs on the event loop) or plain
    ``def`` (runs in the sync thread with Django's database clean-up, so it
    may use the ORM). Names starting with ``rpc.`` are reserved.

    A plain ``def`` runs in the process's one thread-sensitive sync thread,
    so sync methods of every socket run one at a time. With
    ``thread_sensitive=False`` it runs in a pool thread instead, next to
    other such calls: for blocking work (a slow HTTP call, a file) that must
    not hold up everyone else's sync methods. The database clean-up still
    runs around it, in its own thread; code that is not thread-safe must not
    use this.

    ``permission`` guards the method: a Django permission name
    (``"app.codename"``, checked with ``user.has_perm``) or a callable taking
    the handler and returning a bool (or an awaitable of one). A refused call
    gets -32003 "Forbidden" with ``data`` saying what was required, and the
    method does not run.
    """

    def mark(fn: F) -> F:
        exposed = name or fn.__name__
        if exposed.startswith("rpc.") or exposed.startswith("_"):
            raise ValueError(f"cannot expose {exposed!r}: 'rpc.' and '_' names are reserved")
        if not thread_sensitive and inspect.iscoroutinefunction(fn):
            raise ValueError(f"thread_sensitive applies to plain def methods, not to {exposed!r}")
        setattr(fn, MARK, (exposed, permission, thread_sensitive))
        return fn

    return mark(func) if func is not None else mark


async def check_permission(handler: Any, name: str, permission: Permission) -> None:
    """Raise RpcError -32003 (counted) unless ``handler``'s caller may call ``name``."""
    if isinstance(permission, str):
        user = handler.scope.get("user")
        has_perm = getattr(user, "has_perm", None)
        allowed = bool(has_perm is not None and await database_sync_to_async(has_perm)(permission))
        reason = f"requires the permission {permission!r}"
    else:
        verdict = permission(handler)
        allowed = bool(await verdict if inspect.isawaitable(verdict) else verdict)
        reason = f"refused by {getattr(permission, '__name__', 'a permission check')}"
    if not allowed:
        bump(Count.CALLS_REFUSED_PERMISSION)
        raise RpcError(protocol.FORBIDDEN, "Forbidden", {"method": name, "reason": reason})
