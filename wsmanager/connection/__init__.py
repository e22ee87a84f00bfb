"""One socket's connection: its life cycle, limits, outgoing queue and writer.

Private modules, below the handlers and the node: ``_lifecycle`` (the state
machine and close codes), ``_outbox`` (the ordered outgoing queue),
``_writer`` (the task that drains it onto the server), ``_limits`` (rate and
size limits on what arrives), ``_origin`` and ``_addresses`` (who may
connect), ``_admission`` (the handshake's checks) and ``_refusals`` (counted,
logged refusals). The public names (:class:`~wsmanager.CloseCode`,
:class:`~wsmanager.State`) are exported by :mod:`wsmanager`.
"""
