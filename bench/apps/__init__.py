"""One ASGI module per benchmarked system; each is also its own Django URLconf.

* :mod:`bench.apps.bare`: plain Channels consumers, written as the Channels
  docs teach (``AsyncWebsocketConsumer``, groups through the channel layer).
* :mod:`bench.apps.sio`: python-socketio's ``AsyncServer`` behind ``ASGIApp``.
* :mod:`bench.apps.wsm`: wsmanager handlers.

Each serves the same endpoints (echo, rpc, room, direct) and the HTTP view
``POST /send/<id>`` that pushes the request body to one socket.
"""
