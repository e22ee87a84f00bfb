"""WebSocket routes of the demo: one line per handler."""

from wsmanager import route

from .handlers import ROOM_PATTERN, ChatHandler
from .live import LiveHandler

websocket_urlpatterns = [
    route(rf"^ws/chat/(?P<room>{ROOM_PATTERN})/$", ChatHandler),
    route(r"^ws/live/$", LiveHandler),
]
