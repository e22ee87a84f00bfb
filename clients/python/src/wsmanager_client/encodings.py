"""The two encodings of wsmanager's JSON-RPC messages, and their WebSocket subprotocols.

* ``"json"`` (subprotocol ``wsmanager.v1.json``, and the default when no
  subprotocol is offered): text frames, :mod:`.protocol` as it is.
* ``"msgpack"`` (subprotocol ``wsmanager.v1.msgpack``): the same message
  shapes as MessagePack maps in binary frames; ``bytes`` values travel as
  MessagePack ``bin``, where JSON has no form for them (docs/protocol.md,
  section 15).

Pure functions, no I/O, shared by the client and the server (as
:mod:`.protocol` is). The ``msgpack`` package is imported on first use, so
this module loads without it; :func:`available` says whether it is there
(``pip install wsmanager-client[msgpack]``).

Guarantees of :func:`unpack`:

* it never raises, for any ``bytes``: malformed input becomes one
  :class:`~.protocol.Invalid` item, as :func:`~.protocol.decode` does;
* the caller checks the frame's size first (``max_message_size``); then a
  batch's length is read from the array's header and refused over
  ``max_batch`` before any member is unpacked; no length in a header can make
  the unpacker allocate more than the frame holds; nesting is bounded by the C
  unpacker's fixed stack (1,024 levels: deeper is a Parse error, without
  recursion in Python), and then by ``max_depth`` on the unpacked value, with
  an explicit stack;
* only the JSON data model comes out: maps with string keys, arrays, strings,
  numbers, booleans, nil, and ``bin`` as ``bytes``. Extension types (the
  timestamp among them) and keys that are not strings are a Parse error.

Non-guarantee: MessagePack floats may be NaN or infinite; such a value reaches
the method as it came, and cannot be sent on to a JSON peer (an EncodeError
where the server re-encodes it).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from typing import Any, Final

from . import protocol
from .protocol import Decoded, EncodeError, ErrorObject, Invalid

__all__ = [
    "ENCODINGS",
    "JSON",
    "MSGPACK",
    "SUBPROTOCOLS",
    "TEXT_NOT_SUPPORTED",
    "available",
    "encoding_of",
    "join_batch",
    "loads",
    "pack",
    "transcode",
    "unpack",
]

JSON: Final = "json"
MSGPACK: Final = "msgpack"
#: The encodings, by the names a handler's ``encodings`` and a client's ``encoding`` use.
ENCODINGS: Final = (JSON, MSGPACK)
#: The WebSocket subprotocol that selects each encoding at the handshake.
SUBPROTOCOLS: Final = {JSON: "wsmanager.v1.json", MSGPACK: "wsmanager.v1.msgpack"}
_BY_SUBPROTOCOL: Final = {name: encoding for encoding, name in SUBPROTOCOLS.items()}

#: The -32001 that answers a text frame on a MessagePack socket (and a binary one on JSON).
TEXT_NOT_SUPPORTED: Final = ErrorObject(protocol.BINARY_NOT_SUPPORTED, "Text frames are not accepted")


def available() -> bool:
    """Whether the ``msgpack`` package can be imported."""
    try:
        _msgpack()
    except ImportError:
        return False
    return True


def encoding_of(subprotocol: str | None) -> str:
    """The encoding a negotiated subprotocol selects: none, or one not ours, is JSON."""
    return _BY_SUBPROTOCOL.get(subprotocol or "", JSON)


def _msgpack() -> Any:
    try:
        return importlib.import_module("msgpack")  # untyped: used through Any
    except ImportError as exc:
        raise ImportError(
            "MessagePack needs the msgpack package: pip install wsmanager-client[msgpack]"
        ) from exc


def pack(obj: Any) -> bytes:
    """``obj`` as MessagePack (``bytes`` as ``bin``, ``str`` as ``str``). Raises
    :class:`~.protocol.EncodeError` for values MessagePack has no form for
    (as :func:`~.protocol.dumps` does for JSON), nesting deeper than 512 included."""
    try:
        packed: bytes = _msgpack().packb(obj, use_bin_type=True)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise EncodeError(str(exc)) from exc
    return packed


def transcode(text: str) -> bytes:
    """A JSON text frame (always encodable: it came from :func:`~.protocol.dumps`) as MessagePack."""
    return pack(json.loads(text))


def loads(data: bytes) -> Any:
    """One MessagePack value, without the limits of :func:`unpack` (for tests and tools,
    on frames from a trusted peer). Raises ``ValueError`` for anything malformed."""
    return _msgpack().unpackb(data, raw=False)


def join_batch(answers: Sequence[bytes]) -> bytes:
    """Packed answers as one MessagePack array: its header, then the members as they are."""
    n = len(answers)
    if n < 16:
        header = bytes((0x90 | n,))
    elif n < 1 << 16:
        header = b"\xdc" + n.to_bytes(2, "big")
    else:
        header = b"\xdd" + n.to_bytes(4, "big")
    return header + b"".join(answers)


class _Unsupported(ValueError):
    pass


def _refuse_ext(code: int, data: bytes) -> Any:
    raise _Unsupported(f"extension type {code} is not accepted")


_CONTAINERS: Final = (list, dict)
_SCALARS: Final = (str, int, float, bool, type(None), bytes)


def _too_deep(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` arrays and maps (an explicit stack, no
    recursion). Raises :class:`_Unsupported` for a value outside the JSON data model."""
    if not isinstance(value, _CONTAINERS):
        if not isinstance(value, _SCALARS):
            raise _Unsupported(f"{type(value).__name__} is not accepted")
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > limit:
            return True
        members = container.values() if isinstance(container, dict) else container
        for member in members:
            if isinstance(member, _CONTAINERS):
                stack.append((member, depth + 1))
            elif not isinstance(member, _SCALARS):
                raise _Unsupported(f"{type(member).__name__} is not accepted")
    return False


def _parse_error(detail: str) -> Decoded:
    return Decoded([Invalid(ErrorObject.standard(protocol.PARSE_ERROR, detail))])


def unpack(data: bytes, *, max_batch: int | None = None, max_depth: int = protocol.MAX_DEPTH) -> Decoded:
    """Decode one binary frame of MessagePack into JSON-RPC items; never raises.

    The same answers as :func:`~.protocol.decode` gives for the same message in
    JSON, and Parse error (``data`` says why) for anything that is not one
    complete MessagePack value of the JSON data model. A batch over
    ``max_batch`` is refused on its array header, before its members are read.
    """
    msgpack = _msgpack()
    unpacker = msgpack.Unpacker(
        max_buffer_size=max(len(data), 1),
        raw=False,
        strict_map_key=True,
        ext_hook=_refuse_ext,
        timestamp=0,
    )
    try:
        unpacker.feed(data)
        first = data[:1]
        is_array = first and (0x90 <= first[0] <= 0x9F or first[0] in (0xDC, 0xDD))
        if is_array and max_batch is not None:
            length = unpacker.read_array_header()
            if length > max_batch:
                return Decoded(
                    [
                        Invalid(
                            ErrorObject.standard(
                                protocol.INVALID_REQUEST, protocol.batch_limit_data(max_batch)
                            )
                        )
                    ]
                )
            value: Any = [unpacker.unpack() for _ in range(length)]
        else:
            value = unpacker.unpack()
        if unpacker.tell() != len(data):
            return _parse_error("extra data after the message")
        if _too_deep(value, max_depth):
            return Decoded([Invalid(ErrorObject.standard(protocol.INVALID_REQUEST, "nesting too deep"))])
    except msgpack.OutOfData:
        return _parse_error("truncated MessagePack")
    except _Unsupported as exc:
        return _parse_error(str(exc))
    except msgpack.StackError:
        return _parse_error("nesting deeper than the unpacker's stack")
    except (ValueError, TypeError, msgpack.UnpackException):  # StackError, FormatError, bad UTF-8, keys
        return _parse_error("not valid MessagePack")
    return protocol.decode_value(value, max_batch=max_batch)
