from django.contrib import admin
from django.urls import path, re_path
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.generic import TemplateView

from wsmanager.ops import probes

from . import views
from .handlers import ROOM_PATTERN

urlpatterns = [
    path("", views.index, name="index"),
    # The task list: static, live from the topic "tasks"; the cookie is for the API's CSRF check.
    path(
        "tasks/", ensure_csrf_cookie(TemplateView.as_view(template_name="demo_chat/tasks.html")), name="tasks"
    ),
    path("admin/", admin.site.urls),
    path("healthz", probes.health),
    path("readyz", probes.readiness),
    path("metrics", views.metrics),
    path("api/stats", views.process_stats),
    path("api/tasks", views.tasks),
    path("api/tasks/bulk", views.tasks_bulk),
    path("api/tasks/<int:task_id>", views.task),
    path("api/sockets/<str:socket_id>/messages", views.socket_message),
    path("api/sockets/<str:socket_id>/invoke", views.socket_invoke),
    re_path(rf"^api/rooms/(?P<room>{ROOM_PATTERN})/messages$", views.room_message),
    re_path(rf"^api/rooms/(?P<room>{ROOM_PATTERN})/sockets$", views.room_sockets),
    re_path(r"^api/", views.not_found),
]
