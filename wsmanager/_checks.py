"""Django system checks: the ``WSMANAGER`` setting, and a project set up to serve sockets.

They are registered when this module is imported: by the app's ``ready()``
and also by ``import wsmanager`` (the routing module imports it), so that a
project that uses wsmanager without ``"wsmanager"`` in ``INSTALLED_APPS`` hears
about it (W002) from any check run that follows the import. Non-guarantee:
``manage.py check`` imports the project's settings, apps and URLconf, not its
ASGI module; when nothing it imports before the checks run imports wsmanager
(the URLconf is imported while they run), W002 cannot be reported there, and
:func:`wsmanager.handlers._routing.websocket_app` logs the same warning when the ASGI
module is loaded by a server.

| id | when |
| --- | --- |
| E001 | a ``WSMANAGER`` value is invalid (one error per problem) |
| W001 | ``CHANNEL_LAYERS`` has no layer under ``WSMANAGER["CHANNEL_LAYER"]`` |
| W002 | ``"wsmanager"`` is not in ``INSTALLED_APPS`` |
| W003 | ``DEBUG`` is on and ``"daphne"`` is not in ``INSTALLED_APPS``: ``manage.py runserver``
         serves WSGI only, and answers every WebSocket handshake with 404 |
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from ._conf import validate

__all__ = ["check_installed", "check_runserver", "check_settings", "installation_warnings"]


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


@register()
def check_installed(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W002 when wsmanager is used but ``"wsmanager"`` is not an installed app."""
    if apps.is_installed("wsmanager"):
        return []
    return [
        Warning(
            '"wsmanager" is not in INSTALLED_APPS: `manage.py wsmanager`, the static browser '
            "client, the admin page's templates and the checks of a check run that does not "
            "import wsmanager are missing.",
            hint='Add "wsmanager" to INSTALLED_APPS (docs/quickstart.md).',
            id="wsmanager.W002",
        )
    ]


@register()
def check_runserver(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W003 when DEBUG is on and daphne does not provide ``manage.py runserver``."""
    if not settings.DEBUG or apps.is_installed("daphne"):
        return []
    return [
        Warning(
            '"daphne" is not in INSTALLED_APPS: `manage.py runserver` is then Django\'s WSGI '
            "server, which never loads ASGI_APPLICATION and answers every WebSocket handshake "
            "with 404.",
            hint='Put "daphne" first in INSTALLED_APPS (it only replaces runserver), or serve '
            'with uvicorn or daphne and add "wsmanager.W003" to SILENCED_SYSTEM_CHECKS.',
            id="wsmanager.W003",
        )
    ]


def installation_warnings() -> list[CheckMessage]:
    """W002, for code that runs outside a check run (a server loading the ASGI module);
    nothing before the app registry is ready."""
    if not apps.ready:
        return []
    return check_installed()
