"""The process's node: one per process, it delivers frames to local sockets
and relays them to other processes (``_hub``), over the channel layer
(``_link``), with calls across processes (``_relay``, ``_remote``), its
heartbeat (``_heartbeat``) and local delivery (``_local``).

Public: :func:`get_node` (the process's node) and :func:`reset_node` (drop
it: tests, or after changing settings).
"""

from ._hub import Node, get_node, reset_node

__all__ = ["Node", "get_node", "reset_node"]
