"""wsmanager: a connection manager for Django Channels.

Handlers (:class:`WebSocketHandler`, :class:`RpcHandler`), a registry of every
socket reachable from anywhere (:class:`Manager`, :func:`get_manager`),
JSON-RPC 2.0 both ways, and one-line routing. See README.md and docs/.

The public API is what this package exports (``__all__``) and the public
modules ``exceptions``, ``contract``, ``observe``, ``node``, ``registry``,
``ops.metrics``, ``ops.tracing``, ``ops.probes``, ``ops.drain``,
``ops.lifespan``, ``testing`` and ``client``; every ``_``-prefixed module is
private and may change without notice. Names load lazily (PEP 562): ``import
wsmanager`` imports neither Django nor Channels until a name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._manager import Manager, get_manager
    from ._presence import Change, Member
    from .connection._lifecycle import CloseCode, State
    from .exceptions import (
        ConfigurationError,
        ConnectionClosed,
        DeliveryError,
        InvokeError,
        InvokeTimeout,
        RegistryUnavailable,
        RejectConnection,
        RemoteError,
        RpcError,
        SocketNotFound,
        SocketParked,
        WsManagerError,
    )
    from .handlers._handler import WebSocketHandler
    from .handlers._routing import route, websocket_app
    from .jsonrpc._dispatch import RpcHandler, rpc
    from .observe._counters import stats
    from .ops import drain as drain
    from .ops import metrics as metrics
    from .ops import probes as probes
    from .ops import tracing as tracing
    from .registry import ConnectionInfo, Departure, RegistryBackend
    from .topics import Topic, observe_model, topic

__version__ = "0.1.0"

#: Each exported name and the module that defines it (``None``: the name is that module).
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "Change": ("._presence", "Change"),
    "CloseCode": (".connection._lifecycle", "CloseCode"),
    "ConfigurationError": (".exceptions", "ConfigurationError"),
    "ConnectionClosed": (".exceptions", "ConnectionClosed"),
    "ConnectionInfo": (".registry", "ConnectionInfo"),
    "DeliveryError": (".exceptions", "DeliveryError"),
    "Departure": (".registry", "Departure"),
    "InvokeError": (".exceptions", "InvokeError"),
    "InvokeTimeout": (".exceptions", "InvokeTimeout"),
    "Manager": ("._manager", "Manager"),
    "Member": ("._presence", "Member"),
    "RegistryBackend": (".registry", "RegistryBackend"),
    "RegistryUnavailable": (".exceptions", "RegistryUnavailable"),
    "RejectConnection": (".exceptions", "RejectConnection"),
    "RemoteError": (".exceptions", "RemoteError"),
    "RpcError": (".exceptions", "RpcError"),
    "RpcHandler": (".jsonrpc._dispatch", "RpcHandler"),
    "SocketNotFound": (".exceptions", "SocketNotFound"),
    "SocketParked": (".exceptions", "SocketParked"),
    "State": (".connection._lifecycle", "State"),
    "Topic": (".topics", "Topic"),
    "WebSocketHandler": (".handlers._handler", "WebSocketHandler"),
    "WsManagerError": (".exceptions", "WsManagerError"),
    "get_manager": ("._manager", "get_manager"),
    "observe_model": (".topics", "observe_model"),
    "route": (".handlers._routing", "route"),
    "rpc": (".jsonrpc._dispatch", "rpc"),
    "stats": (".observe._counters", "stats"),
    "topic": (".topics", "topic"),
    "websocket_app": (".handlers._routing", "websocket_app"),
    # Public modules reachable from the root, as the docs write them
    # (``from wsmanager import drain``); not in __all__.
    "drain": (".ops.drain", None),
    "metrics": (".ops.metrics", None),
    "probes": (".ops.probes", None),
    "tracing": (".ops.tracing", None),
}

__all__ = [
    "Change",
    "CloseCode",
    "ConfigurationError",
    "ConnectionClosed",
    "ConnectionInfo",
    "DeliveryError",
    "Departure",
    "InvokeError",
    "InvokeTimeout",
    "Manager",
    "Member",
    "RegistryBackend",
    "RegistryUnavailable",
    "RejectConnection",
    "RemoteError",
    "RpcError",
    "RpcHandler",
    "SocketNotFound",
    "SocketParked",
    "State",
    "Topic",
    "WebSocketHandler",
    "WsManagerError",
    "get_manager",
    "observe_model",
    "route",
    "rpc",
    "stats",
    "topic",
    "websocket_app",
]


def __getattr__(name: str) -> Any:
    """Import an exported name on first use and keep it (PEP 562)."""
    try:
        module_name, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'wsmanager' has no attribute {name!r}") from None
    module = importlib.import_module(module_name, __name__)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
