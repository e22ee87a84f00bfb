"""ASGI entry point: ``daphne demo_chat.asgi:application``.

HTTP goes to Django (static files served too, so that daphne alone runs the
demo); WebSockets go to the wsmanager handlers. Importing it runs Django's
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

from .routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": websocket_app(websocket_urlpatterns),
    }
)
