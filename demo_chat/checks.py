"""The demo's system checks, and the start-up gate that runs them under daphne.

``manage.py runserver`` (``make demo``) and every other management command run
Django's system checks before starting; ``daphne demo_chat.asgi:application``
does not, so ``demo_chat/asgi.py`` calls :func:`refuse_serious_problems` and the
process exits at import instead of serving.

``demo_chat.E001``: DEBUG is off and ``SECRET_KEY`` is the demo's placeholder,
which is public (it is in the source), so sessions, CSRF tokens and signed
values could be forged. With DEBUG on (a laptop) the placeholder is accepted.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.management.base import SystemCheckError

__all__ = ["placeholder_secret_key", "refuse_serious_problems"]


@checks.register(checks.Tags.security)
def placeholder_secret_key(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """demo_chat.E001 when DEBUG is off and SECRET_KEY is the placeholder of demo_chat/settings.py."""
    from .settings import PLACEHOLDER_SECRET_KEY

    if settings.DEBUG or settings.SECRET_KEY != PLACEHOLDER_SECRET_KEY:
        return []
    return [
        checks.Error(
            "SECRET_KEY is the demo's public placeholder and DEBUG is off.",
            hint="Set DJANGO_SECRET_KEY to a long random value (or DJANGO_DEBUG=1 on a laptop).",
            id="demo_chat.E001",
        )
    ]


def refuse_serious_problems() -> None:
    """Run every system check (as runserver does); raise SystemCheckError on any error."""
    serious = [m for m in checks.run_checks() if m.is_serious() and not m.is_silenced()]
    if serious:
        lines = "\n".join(str(message) for message in serious)
        raise SystemCheckError(f"System check identified problems; not starting:\n{lines}")
