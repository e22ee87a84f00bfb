"""The Python client, for code that has the server installed: ``wsmanager_client`` under its old name.

The client is its own distribution, ``wsmanager-client`` (importable as
:mod:`wsmanager_client`, without Django), which the server depends on. This
module re-exports its public names, so ``from wsmanager.client import
connect`` keeps working where ``wsmanager`` is installed; new code imports
:mod:`wsmanager_client`. The guide is docs/python-client.md.
"""

from wsmanager_client import (
    Client,
    Closed,
    Connected,
    Connecting,
    ConnectionClosed,
    HandshakeRefused,
    InvokeTimeout,
    LimitExceeded,
    NotConnected,
    Options,
    Position,
    Publication,
    Reconnected,
    Reconnecting,
    Recovered,
    RecoveryFailed,
    RemoteError,
    RpcError,
    State,
    Stats,
    Subscription,
    Unrecovered,
    WsManagerError,
    backoff_delay,
    connect,
    is_final_close_code,
)

__all__ = [
    "Client",
    "Closed",
    "Connected",
    "Connecting",
    "ConnectionClosed",
    "HandshakeRefused",
    "InvokeTimeout",
    "LimitExceeded",
    "NotConnected",
    "Options",
    "Position",
    "Publication",
    "Reconnected",
    "Reconnecting",
    "Recovered",
    "RecoveryFailed",
    "RemoteError",
    "RpcError",
    "State",
    "Stats",
    "Subscription",
    "Unrecovered",
    "WsManagerError",
    "backoff_delay",
    "connect",
    "is_final_close_code",
]
