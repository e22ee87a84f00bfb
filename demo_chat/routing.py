"""WebSocket routes of the demo: one line per handler."""

from wsmanager import route

from .handlers import ROOM_PATTERN, ChatHandler

websocket_urlpatterns = [
    route(rf"^ws/chat/(?P<room>{ROOM_PATTERN})/$", ChatHandler),
]
