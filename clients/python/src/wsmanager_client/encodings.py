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
* then, before msgpack's unpacker sees the frame (it reserves room for a
  container's declared members as it reads the header), one pass over the
  frame, in C over runs of small items and in Python for each larger header
  or long payload, refuses a frame whose containers declare more members in
  all than it has bytes (a well-formed frame never does: each member takes a
  byte at least), or that ends inside a header or a payload: Parse error
  ``"truncated MessagePack"``. So the unpacker reserves at most about 8 bytes
  per byte of frame, plus what headers of 15 entries or fewer hold (a few
  hundred KB at most);
* nesting is bounded by the C unpacker's fixed stack (1,024 levels: deeper is
  a Parse error, without recursion in Python), and then by ``max_depth`` on
  the unpacked value (Invalid Request ``"nesting too deep"``, as JSON), with
  an explicit stack;
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
import re
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


def _run_of_small_items() -> re.Pattern[bytes]:
    """Any run of items the unpacker can take without reserving room for more than 30
    members: one-byte items (small ints, nil, booleans, fixmap and fixarray headers, at
    most 15 entries each), array and map headers of at most 15 entries, numbers, fixext
    and strings of up to 31 bytes."""
    one = b"[\\x00-\\x9f\\xc0\\xc2\\xc3\\xe0-\\xff]"
    fixed = {0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,
             0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}  # fmt: skip
    sized = {kind: n for kind, n in fixed.items()} | {0xA0 + n: n for n in range(32)}
    # array 16 and map 16 declaring at most 15 entries, as the fix forms can
    few = b"[\\xdc\\xde]\\x00[\\x00-\\x0f]"
    alternatives = [one, few] + [
        b"\\x%02x.{%d}" % (kind, n) if n else b"\\x%02x" % kind for kind, n in sized.items()
    ]
    # Possessive (``*+``, Python 3.11): each item's first byte picks its one alternative,
    # so nothing is ever given back, and the engine keeps no backtracking state per item
    # (with a plain ``*`` a 1 MB frame of small ints held 122 MB while it was scanned).
    return re.compile(b"(?:" + b"|".join(alternatives) + b")*+", re.DOTALL)


_SMALL_ITEMS: Final = _run_of_small_items()
# Type byte: (bytes of the length, bytes after it besides the payload) of str 8/16/32,
# bin 8/16/32 and ext 8/16/32 (an ext's type byte).
_SIZED: Final = {0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0), 0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1),
                 0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0)}  # fmt: skip
# Type byte: (bytes of the count, members per entry) of array 16/32 and map 16/32.
_COUNTED: Final = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}


def _promises_too_much(data: bytes) -> bool:
    """Whether the containers of ``data`` declare more members in all than it has bytes.

    msgpack's unpacker reserves a container's declared members as it reads its header; a
    frame whose headers each declare as many members as it has bytes, nested, made it
    reserve tens of MB for a few KB. A well-formed frame's declared members are distinct
    items of one byte at least, so their sum is at most its size; what is left to the
    unpacker reserves, at any moment, at most 8 bytes per byte of frame plus what the
    small headers hold (15 entries each, 1,024 levels at most: a few hundred KB).

    One pass in C over runs of small items (:data:`_SMALL_ITEMS`); a Python step per
    larger header, long string or bin only. True also for a frame that ends inside a
    header or a payload (it is truncated); other faults are left to the unpacker.
    """
    end, pos, declared = len(data), 0, 0
    match, sized, counted = _SMALL_ITEMS.match, _SIZED, _COUNTED
    while True:
        pos = match(data, pos).end()  # type: ignore[union-attr]  # "*" always matches
        if pos >= end:
            return False
        kind = data[pos]
        if kind in counted:
            width, per = counted[kind]
            if pos + 1 + width > end:
                return True
            declared += int.from_bytes(data[pos + 1 : pos + 1 + width], "big") * per
            if declared > end:
                return True
            pos += 1 + width
        elif kind in sized:
            width, extra = sized[kind]
            if pos + 1 + width > end:
                return True
            pos += 1 + width + extra + int.from_bytes(data[pos + 1 : pos + 1 + width], "big")
            if pos > end:
                return True
        else:  # 0xC1, or a small item cut short: the unpacker says which
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
        if _promises_too_much(data):  # what the headers promise is not there
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
