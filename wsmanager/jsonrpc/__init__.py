"""JSON-RPC 2.0 on a socket, both ways.

Private modules: ``_dispatch`` (:class:`~wsmanager.RpcHandler` and the
:func:`~wsmanager.jsonrpc._dispatch` decorator), ``_exposure`` (permissions and threads of
exposed methods), ``_invocations`` (calls to the client awaiting an answer),
``_params`` (binding and checking params) and ``_declarations`` (what a
handler declares it sends: public through :mod:`wsmanager.jsonrpc._declarations`).
Named ``jsonrpc`` so as not to shadow the ``rpc`` decorator of :mod:`wsmanager`.
"""
