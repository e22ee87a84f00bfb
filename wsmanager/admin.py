"""The Django admin page of live connections ("Live connections" under "WebSocket manager").

Found by the admin's autodiscovery when ``django.contrib.admin`` is
installed. Staff users with the permission ``wsmanager.manage_connections``
(superusers have it) see every open socket of every handler this process
knows (:mod:`wsmanager._handler_classes`), **cluster-wide** with a shared registry
(Redis): id, handler, user id, groups, process (node), connected since and
last activity.
They can filter by handler, group and user id, search by id (a substring),
and disconnect sockets or send them a notification, one row at a time or
the ticked rows together.

What it does: reads the registry (``Manager.all``, ``group_members``,
``user_sockets``), at most :data:`MAX_ROWS` rows per page; a disconnect is
``Manager.disconnect(id, 1000, "disconnected by an administrator")``, a
notification ``Manager.notify(id, method, text=...)``; both reach a socket in
any process. Every action is reported as a message on the page and a line
on the ``wsmanager.admin`` logger (not in the admin's ``LogEntry`` table:
there is no row to point at). A registry outage shows a message,
never a traceback.

Last activity is the time of the socket's last frame in or out, as its
process last published it: each process keeps it in memory and publishes
it on every heartbeat (``put_node_activity``, twice per
``HEARTBEAT_INTERVAL``), so it may lag by up to half an interval; "-" before
the first frame or the first beat that saw it. Nothing is written to the
registry per frame.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from ._conf import get_settings
from ._handler_classes import handler_names
from ._manager import get_manager
from .exceptions import SocketNotFound, WsManagerError
from .models import LiveConnection
from .registry import ConnectionInfo, get_registry

__all__ = ["MAX_ROWS", "PERMISSION", "LiveConnectionAdmin"]

logger = logging.getLogger(__name__)

PERMISSION = "wsmanager.manage_connections"
#: Rows shown at most; narrow the filters to see the others.
MAX_ROWS = 500
#: The notification method the form proposes.
DEFAULT_METHOD = "admin.message"


def _rows(handlers: list[str], group: str, user: str, query: str) -> list[ConnectionInfo]:
    rows: list[ConnectionInfo] = []
    for name in handlers:
        manager = get_manager(name)
        if group:
            infos = manager.get_many(manager.group_members(group))
        elif user:
            infos = manager.get_many(manager.user_sockets(user))
        else:
            infos = manager.all()
        rows.extend(
            info
            for info in infos
            if (not group or group in info.groups)
            and (not user or info.user_id == user)
            and (not query or query in info.id)
        )
    rows.sort(key=lambda info: (info.handler, info.connected_at, info.id))
    return rows


def _when(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


@admin.register(LiveConnection)
class LiveConnectionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """A read-from-the-registry changelist with two actions; no add, change or delete pages."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        user: Any = request.user
        return bool(user.is_active and user.is_staff and user.has_perm(PERMISSION))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        info = (self.opts.app_label, self.opts.model_name)
        view = self.admin_site.admin_view(self.changelist_view)
        return [path("", view, name="{}_{}_changelist".format(*info))]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            self._act(request)
            return HttpResponseRedirect(request.get_full_path())
        known = handler_names()
        handler = request.GET.get("handler", "")
        group = request.GET.get("group", "").strip()
        user = request.GET.get("user", "").strip()
        query = request.GET.get("q", "").strip()
        rows: list[ConnectionInfo] = []
        active: dict[str, float] = {}
        try:
            rows = _rows([handler] if handler in known else known, group, user, query)
            active = async_to_sync(get_registry().last_activity)(rows[:MAX_ROWS])
        except WsManagerError as exc:
            logger.warning("admin: listing connections failed: %s", exc)
            self.message_user(request, "The registry is unavailable; try again.", messages.ERROR)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Live connections",
            "handlers": known,
            "filters": {"handler": handler, "group": group, "user": user, "q": query},
            "total": len(rows),
            "rows": [
                {
                    "key": f"{info.handler} {info.id}",
                    "info": info,
                    "groups": sorted(info.groups),
                    "since": datetime.fromtimestamp(info.connected_at, UTC),
                    "active": _when(active.get(info.id)),
                }
                for info in rows[:MAX_ROWS]
            ],
            "max_rows": MAX_ROWS,
            "beat": get_settings().heartbeat_interval / 2,
            "default_method": DEFAULT_METHOD,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/wsmanager/live_connections.html", context)

    def _act(self, request: HttpRequest) -> None:
        action, keys = request.POST.get("action", ""), request.POST.getlist("sockets")
        for row_action in ("disconnect", "notify"):  # a row's own button: that row only
            if f"row_{row_action}" in request.POST:
                action, keys = row_action, [request.POST[f"row_{row_action}"]]
        known = set(handler_names())
        targets = [tuple(key.split(" ", 1)) for key in keys if " " in key]
        targets = [(h, sid) for h, sid in targets if h in known]
        if action not in ("disconnect", "notify") or not targets:
            self.message_user(request, "Tick at least one connection and choose an action.", messages.WARNING)
            return
        method = request.POST.get("method", "").strip() or DEFAULT_METHOD
        text = request.POST.get("text", "")
        if action == "notify" and not text.strip():
            self.message_user(request, "A notification needs a text.", messages.WARNING)
            return
        done = gone = failed = 0
        for handler, sid in targets:
            manager = get_manager(handler)
            try:
                if action == "disconnect":
                    manager.disconnect(sid, 1000, "disconnected by an administrator")
                else:
                    manager.notify(sid, method, text=text)
                done += 1
            except SocketNotFound:
                gone += 1
            except WsManagerError as exc:
                logger.warning("admin: %s of socket %s failed: %s", action, sid, exc)
                failed += 1
        logger.info("admin: %s by %s: %d done, %d gone, %d failed", action, request.user, done, gone, failed)
        verb = "Disconnected" if action == "disconnect" else f"Sent {method!r} to"
        self.message_user(request, f"{verb} {done} connection(s).", messages.SUCCESS)
        if gone:
            self.message_user(request, f"{gone} connection(s) had closed already.", messages.WARNING)
        if failed:
            self.message_user(request, f"{failed} connection(s) could not be reached.", messages.ERROR)
