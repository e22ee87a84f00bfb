"""The demo's Django app: registers its system checks (demo_chat/checks.py)."""

from django.apps import AppConfig


class DemoChatConfig(AppConfig):
    name = "demo_chat"
    verbose_name = "wsmanager demo chat"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401  (registration side effect)
            live,  # noqa: F401  (the Task observer: saves and deletes published to "tasks")
        )

        try:  # the demo's Prometheus metrics (GET /metrics), when prometheus-client is installed
            from wsmanager.ops import metrics
        except ImportError:
            return
        metrics.install()
