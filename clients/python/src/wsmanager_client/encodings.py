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
  ``max_batch`` before any member is unpacked;
* then, before msgpack's unpacker sees the frame, one pass over its headers
  (str and bin payloads skipped, one step per item) refuses any container
  whose declared members, plus those its enclosing containers still owe,
  outnumber the bytes left (each member takes one byte at least): Parse error
  ``"truncated MessagePack"``; and nesting deeper than ``max_depth``
  (each array or map one level, the message itself the first): Invalid Request
  ``"nesting too deep"``, as JSON, even if the frame is malformed further on.
  So what the unpacker reserves for declared members is bounded by the frame's
  size, and decoding costs about what the frame weighs;
* only the JSON data model comes out: maps with string keys, arrays, strings,
  numbers, booleans, nil, and ``bin`` as ``bytes``. Extension types (the
  timestamp among them), keys that are not strings (``bin`` ones included),
  NaN and infinities are a Parse error, as they are in JSON text.

Guarantees of :func:`pack`: what it packs is what :func:`~.protocol.dumps`
would send as JSON, so a peer sees the same message in either encoding
(``bytes`` apart): keys as JSON writes them, no NaN or infinity.
"""

from __future__ import annotations

import importlib
import json
import math
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


_PACK_DEPTH: Final = 512  # msgpack's own limit on nesting when packing


def _key(key: Any) -> str:
    """A map key as ``json.dumps`` writes it: strings as they are; booleans, None, ints and
    floats as their JSON text; anything else, and non-finite floats, refused."""
    if isinstance(key, str):
        return key
    if key is True or key is False or key is None:
        return json.dumps(key)
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float) and math.isfinite(key):
        return float.__repr__(key)
    raise ValueError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _json_model(value: Any, depth: int) -> Any:
    """``value`` within the JSON data model as :func:`~.protocol.dumps` sees it (keys as
    strings, no NaN or infinity; ``bytes`` kept): the same object when nothing changes."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no JSON form")
        return value
    if isinstance(value, dict):
        if depth >= _PACK_DEPTH:
            raise ValueError("nesting too deep to pack")
        changed = False
        out = {}
        for k, v in value.items():
            key, member = _key(k), _json_model(v, depth + 1)
            changed = changed or key is not k or member is not v
            out[key] = member  # two keys with one text: the last one, as a JSON parser keeps
        return out if changed else value
    if isinstance(value, (list, tuple)):
        if depth >= _PACK_DEPTH:
            raise ValueError("nesting too deep to pack")
        items = [_json_model(v, depth + 1) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def pack(obj: Any) -> bytes:
    """``obj`` as MessagePack (``bytes`` as ``bin``, ``str`` as ``str``), within the JSON
    data model as :func:`~.protocol.dumps` makes it: a key that is an int, a float, a
    boolean or None becomes the string JSON writes (``{1: "x"}`` is ``{"1": "x"}``), and a
    lone surrogate in a string becomes ``?`` (MessagePack strings are UTF-8). Raises
    :class:`~.protocol.EncodeError` for values JSON or MessagePack has no form for (as
    :func:`~.protocol.dumps` does): NaN and infinities, other key types, ints beyond 64
    bits, nesting deeper than 512."""
    try:
        packed: bytes = _msgpack().packb(_json_model(obj, 0), use_bin_type=True, unicode_errors="replace")
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
    recursion). Raises :class:`_Unsupported` for a value outside the JSON data model:
    other types, keys that are not strings (``bin`` ones), NaN and infinities."""
    if not isinstance(value, _CONTAINERS):
        if not isinstance(value, _SCALARS):
            raise _Unsupported(f"{type(value).__name__} is not accepted")
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(container, dict):
            if not all(type(key) is str for key in container):  # strict_map_key lets bin keys in
                raise _Unsupported("map keys must be strings")
            members = container.values()
        else:
            members = container
        for member in members:
            if isinstance(member, _CONTAINERS):
                stack.append((member, depth + 1))
            elif not isinstance(member, _SCALARS):
                raise _Unsupported(f"{type(member).__name__} is not accepted")
            elif type(member) is float and not math.isfinite(member):
                raise _Unsupported("NaN and infinities are not accepted")  # as in JSON
    return False


# MessagePack type bytes by how much follows them before the next item: a fixed size (ints,
# floats, nil, booleans, fixext), a length of 1/2/4 bytes then that many bytes (str, bin, ext:
# an ext's type byte counted as one more), or a container's count (read by _prescan).
_FIXED: Final = {
    **dict.fromkeys(range(0x00, 0x80), 0),
    **dict.fromkeys(range(0xE0, 0x100), 0),
    0xC0: 0, 0xC2: 0, 0xC3: 0,
    0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,
    0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,
    0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17,
}  # fmt: skip
# type byte: (bytes of the length, bytes after the length besides the payload)
_SIZED: Final = {0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0), 0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1),
                 0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0)}  # fmt: skip
# type byte: (bytes of the count, members per counted entry)
_COUNTED: Final = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}


def _prescan(data: bytes, max_depth: int) -> str | None:
    """Walk the headers of ``data`` (str and bin payloads skipped) and say what is wrong
    with them before msgpack's unpacker, which reserves a container's declared members as
    it reads the header, sees them: ``"truncated"``, ``"too deep"`` (more than
    ``max_depth`` open containers), ``"too long"`` (a container declaring more members
    than the bytes left could hold, one byte each at least, counting the members its
    enclosing containers still owe), or None. Costs one step per item, whatever the
    counts say. Bad type bytes are left to the unpacker."""
    end = len(data)
    pos = 0
    owed = 1  # members still to come, over every open container (the top value: 1)
    open_counts: list[int] = []  # members each open container still owes
    fixed, sized, counted = _FIXED, _SIZED, _COUNTED
    while owed:
        if pos >= end:
            return "truncated"
        while open_counts and open_counts[-1] == 0:
            open_counts.pop()
        if open_counts:
            open_counts[-1] -= 1
        owed -= 1
        kind = data[pos]
        pos += 1
        skip = fixed.get(kind)
        if skip is not None:
            pos += skip
            continue
        if 0xA0 <= kind <= 0xBF:
            pos += kind & 0x1F
            continue
        if 0x80 <= kind <= 0x9F:
            n = (kind & 0x0F) * (2 if kind < 0x90 else 1)
        elif kind in counted:
            width, per = counted[kind]
            if pos + width > end:
                return "truncated"
            n = int.from_bytes(data[pos : pos + width], "big") * per
            pos += width
        elif kind in sized:
            width, extra = sized[kind]
            if pos + width > end:
                return "truncated"
            pos += width + extra + int.from_bytes(data[pos : pos + width], "big")
            continue
        else:
            return None  # 0xC1: the unpacker says what it is
        if n == 0:
            continue
        if owed + n > end - pos:
            return "too long"
        if len(open_counts) >= max_depth:
            return "too deep"
        open_counts.append(n)
        owed += n
    return None


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
        problem = _prescan(data, max_depth)
        if problem == "too deep":
            return Decoded([Invalid(ErrorObject.standard(protocol.INVALID_REQUEST, "nesting too deep"))])
        if problem is not None:  # what the headers promise is not there
            return _parse_error("truncated MessagePack")
        if is_array and max_batch is not None:
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
