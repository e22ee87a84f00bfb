"""wsmanager: a connection manager for Django Channels.

Handlers (:class:`WebSocketHandler`, :class:`RpcHandler`), a registry of every
socket reachable from anywhere (:class:`Manager`, :func:`get_manager`),
JSON-RPC 2.0 both ways, and one-line routing. See README.md and docs/.
"""

from .counters import stats
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
from .handler import WebSocketHandler
from .lifecycle import CloseCode, State
from .manager import Manager, get_manager
from .presence import Member
from .registry import ConnectionInfo, Departure, RegistryBackend
from .routing import route, websocket_app
from .rpc import RpcHandler, rpc
from .topics import Topic, observe_model, topic

__version__ = "0.1.0"

__all__ = [
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
