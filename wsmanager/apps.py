"""The Django app: registers the system checks and the database signal."""

from django.apps import AppConfig


class WsManagerConfig(AppConfig):
    name = "wsmanager"
    verbose_name = "WebSocket manager"

    def ready(self) -> None:
        from . import _checks, _db  # noqa: F401  (registration side effects)
