"""ASGI app for the recovery-under-attack tests: the demo, plus its chat handler on
routes with small limits (``daphne tests.e2e.recovery_app:application``).

WebSocket routes (``<room>``: the demo's room pattern), all the demo's
:class:`~demo_chat.handlers.ChatHandler` (one registry namespace, ``chat``):

* ``/ws/chat/<room>/``: the demo, unchanged;
* ``/ws/capped/<room>/``: at most :data:`CAP` sockets per client address and process;
* ``/ws/session-limited/<room>/``: :data:`BURST` resumes per session, then (almost) none;
* ``/ws/address-limited/<room>/``: :data:`BURST` resumes per address and process, then
  (almost) none.

HTTP goes to the demo's Django views (``/api/stats``, ``/api/rooms/<room>/sockets``...).
The recovery window comes from ``WSMANAGER_RECOVERY_WINDOW`` as in the demo.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_chat.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from demo_chat.handlers import ROOM_PATTERN, ChatHandler  # noqa: E402
from wsmanager import route, websocket_app  # noqa: E402
from wsmanager.ops.lifespan import lifespan_app  # noqa: E402

#: Sockets one address may hold (open or parked) on ``/ws/capped/``, per process.
CAP = 12
#: Resumes allowed in a row on the limited routes; one more every 1,000 s after that.
BURST = 3
ROOM = rf"(?P<room>{ROOM_PATTERN})"
SCARCE = (0.001, float(BURST))
#: The routes whose tests are not about resume rates resume without them: under the
#: defaults (5 a second per address and handler) a test's outcome would depend on how
#: fast the machine lets it resume. The rates have routes of their own.
UNLIMITED = {"resume_rate_per_address": None, "resume_rate_per_session": None}

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_app(
            [
                route(rf"^ws/chat/{ROOM}/$", ChatHandler, **UNLIMITED),
                route(rf"^ws/capped/{ROOM}/$", ChatHandler, max_connections_per_address=CAP, **UNLIMITED),
                route(
                    rf"^ws/session-limited/{ROOM}/$",
                    ChatHandler,
                    resume_rate_per_session=SCARCE,
                    resume_rate_per_address=None,
                ),
                route(
                    rf"^ws/address-limited/{ROOM}/$",
                    ChatHandler,
                    resume_rate_per_session=None,
                    resume_rate_per_address=SCARCE,
                ),
            ]
        ),
        "lifespan": lifespan_app,
    }
)
