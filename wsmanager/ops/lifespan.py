"""ASGI lifespan: start this process's node at start-up, drain and stop it at shutdown.

Mount :func:`lifespan_app` under the ``"lifespan"`` key of Channels'
``ProtocolTypeRouter``::

    application = ProtocolTypeRouter({
        "http": django_app,
        "websocket": websocket_app(routes),
        "lifespan": lifespan_app,
    })

uvicorn, hypercorn and granian then run the ASGI lifespan protocol
(https://asgi.readthedocs.io/en/latest/specs/lifespan.html) instead of
logging that it is unsupported:

* ``lifespan.startup``: the node starts (:meth:`wsmanager.node.Node.start`:
  its id, its channel on the layer) and :mod:`wsmanager.ops.drain` installs
  its SIGTERM hook; a failure answers ``lifespan.startup.failed`` with the
  error, and the server refuses to start.
* ``lifespan.shutdown``: the sockets still open are closed with 1012 and
  their registry entries removed (:func:`wsmanager.ops.drain.drain`, at once:
  by now the server is stopping), then the node stops (its background tasks,
  and its remaining registry entries); ``lifespan.shutdown.complete``.

Where the server offers no lifespan (daphne), nothing changes: the node
starts with the first socket, as without this app, and
:func:`wsmanager.ops.drain.install` is called from the ASGI module instead (see
docs/deployment.md).
"""

from __future__ import annotations

import logging
from typing import Any

from ..node._hub import get_node
from . import drain

__all__ = ["lifespan_app"]

logger = logging.getLogger(__name__)


async def lifespan_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI app for ``scope["type"] == "lifespan"``; returns after shutdown."""
    if scope.get("type") != "lifespan":
        raise ValueError(f"lifespan_app serves lifespan scopes, not {scope.get('type')!r}")
    while True:
        message = await receive()
        kind = message.get("type")
        if kind == "lifespan.startup":
            try:
                node_id = await get_node().start()
                drain.install()
            except Exception as exc:
                logger.exception("wsmanager start-up failed")
                await send({"type": "lifespan.startup.failed", "message": f"wsmanager: {exc!r}"})
                return
            logger.info("lifespan start-up: node %s started", node_id)
            await send({"type": "lifespan.startup.complete"})
        elif kind == "lifespan.shutdown":
            try:
                closed = await drain.drain(period=0.0, reason="server shutting down")
                await get_node().stop()
            except Exception as exc:
                logger.exception("wsmanager shutdown failed")
                await send({"type": "lifespan.shutdown.failed", "message": f"wsmanager: {exc!r}"})
                return
            logger.info("lifespan shutdown: %d socket(s) closed, node stopped", closed)
            await send({"type": "lifespan.shutdown.complete"})
            return
