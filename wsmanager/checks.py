"""Django system checks for the ``WSMANAGER`` settings (run at start-up)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from .conf import validate

__all__ = ["check_settings"]


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report invalid WSMANAGER values, and a missing channel layer."""
    messages: list[CheckMessage] = [
        Error(problem, hint="See docs/settings.md.", id="wsmanager.E001") for problem in validate()
    ]
    conf = getattr(settings, "WSMANAGER", None) or {}
    alias = conf.get("CHANNEL_LAYER", "default") if isinstance(conf, dict) else "default"
    if alias is not None and alias not in getattr(settings, "CHANNEL_LAYERS", {}):
        messages.append(
            Warning(
                f"CHANNEL_LAYERS has no {alias!r} layer: wsmanager delivers within this process only.",
                hint='Configure CHANNEL_LAYERS, or set WSMANAGER["CHANNEL_LAYER"] = None to silence this.',
                id="wsmanager.W001",
            )
        )
    return messages
