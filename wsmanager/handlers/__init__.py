"""The handler classes users subclass and the routing that serves them.

Private modules: ``_handler`` (:class:`~wsmanager.WebSocketHandler`),
``_hooks`` (presence and life-cycle hooks), ``_resumable`` (connection
recovery on the handler side) and ``_routing`` (:func:`~wsmanager.route`,
:func:`~wsmanager.websocket_app`). The public names are exported by
:mod:`wsmanager`.
"""
