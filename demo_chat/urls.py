from django.contrib import admin
from django.urls import path, re_path

from wsmanager import probes

from . import views
from .handlers import ROOM_PATTERN

urlpatterns = [
    path("", views.index, name="index"),
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
