"""The contract a handler offers its clients, declared and generated.

Declarations (:class:`ClientMethod`, :class:`Notification`,
:class:`ErrorCode`, :func:`raises`) and the generators:
:func:`openrpc_document` (OpenRPC 1.3) and :func:`typescript_declarations`
(a ``.d.ts``). See docs/contract.md.
"""

from ..jsonrpc._declarations import ClientMethod, ErrorCode, Notification, raises
from ._openrpc import OPENRPC_VERSION, openrpc_document
from ._typescript import typescript_declarations

__all__ = [
    "OPENRPC_VERSION",
    "ClientMethod",
    "ErrorCode",
    "Notification",
    "openrpc_document",
    "raises",
    "typescript_declarations",
]
