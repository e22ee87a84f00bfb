"""ASGI entry point: ``daphne demo_chat.asgi:application`` (or uvicorn, hypercorn,
granian: see docs/deployment.md).

HTTP goes to Django (static files served too, so that the server alone runs
the demo); WebSockets go to the wsmanager handlers; the ASGI lifespan starts
and stops this process's node (wsmanager.ops.lifespan). ``drain.install()``
makes SIGTERM close every socket with 1012 and a reason before the server
stops (at lifespan start-up where the server has one; daphne has none). Importing it runs Django's
system checks and raises on an error (demo_chat/checks.py), as runserver would.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_chat.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from .checks import refuse_serious_problems  # noqa: E402

refuse_serious_problems()  # daphne runs no system checks itself (demo_chat/checks.py)

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from wsmanager import websocket_app  # noqa: E402
from wsmanager.ops import drain  # noqa: E402
from wsmanager.ops.lifespan import lifespan_app  # noqa: E402

from .routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": websocket_app(websocket_urlpatterns),
        "lifespan": lifespan_app,
    }
)
drain.install()
