"""JSON-RPC 2.0 as pure functions: decode, validate and encode. No I/O.

This module knows nothing about sockets, Channels or Django, so every rule of
the specification is testable on plain strings.

Guarantees:

* :func:`decode` never raises for any ``str`` or ``bytes`` input: malformed
  input becomes :class:`Invalid` items that carry the error to send back.
* :func:`decode` refuses a batch over ``max_batch`` on the array's length,
  before any member is looked at, and measures depth on the text: its cost
  is one ``json.loads`` plus work in C, then a small object per member of
  an accepted frame (docs/benchmarks.md, "Decoder"). A batch whose text is
  longer than 64 KiB is parsed member by member instead, and refused after
  ``max_batch + 1`` members, however long the rest.
* Every id the peer sent is echoed back unchanged when it is a valid id
  (string, number or null); an invalid id is answered with ``id: null``.
* Encoders produce compact JSON without NaN/Infinity; values that cannot be
  encoded raise :class:`EncodeError` so the caller can answer -32603.
"""

from __future__ import annotations

import json
import math
import re
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Final, TypeAlias

__all__ = [
    "BINARY_NOT_SUPPORTED",
    "FORBIDDEN",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "MAX_DEPTH",
    "MESSAGE_TOO_LARGE",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "RATE_LIMITED",
    "SERVER_BUSY",
    "SERVER_ERROR_MESSAGES",
    "UNAVAILABLE",
    "VERSION",
    "Decoded",
    "EncodeError",
    "ErrorObject",
    "Invalid",
    "Item",
    "JsonId",
    "Request",
    "Response",
    "batch_limit_data",
    "decode",
    "decode_value",
    "dumps",
    "encode_batch",
    "encode_error",
    "encode_notification",
    "encode_request",
    "encode_result",
    "error_response",
    "params_of",
    "result_response",
    "with_offset",
]

VERSION: Final = "2.0"

# Standard codes (JSON-RPC 2.0, section 5.1).
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
# Server errors (-32000 to -32099, implementation-defined). See docs/protocol.md.
SERVER_BUSY: Final = -32000
BINARY_NOT_SUPPORTED: Final = -32001
RATE_LIMITED: Final = -32002
FORBIDDEN: Final = -32003
MESSAGE_TOO_LARGE: Final = -32004
UNAVAILABLE: Final = -32005

SERVER_ERROR_MESSAGES: Final[Mapping[int, str]] = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    SERVER_BUSY: "Too many calls in flight",
    BINARY_NOT_SUPPORTED: "Binary frames are not accepted",
    RATE_LIMITED: "Rate limit exceeded",
    FORBIDDEN: "Forbidden",
    MESSAGE_TOO_LARGE: "Message too large",
    UNAVAILABLE: "Service temporarily unavailable",
}

JsonId: TypeAlias = str | int | float | None
Params: TypeAlias = "tuple[Any, ...] | dict[str, Any]"

# Deeper JSON than this is refused as Invalid Request before it can reach
# user code; Python's parser itself stops near 1,000 levels (Parse error).
MAX_DEPTH: Final = 64


class EncodeError(ValueError):
    """A value could not be encoded as JSON (not serialisable, NaN, a cycle)."""


@dataclass(frozen=True, slots=True)
class ErrorObject:
    """A JSON-RPC error object. ``data`` is omitted from the wire when ``None``."""

    code: int
    message: str
    data: Any = None

    @classmethod
    def standard(cls, code: int, data: Any = None) -> ErrorObject:
        """The error with the library's message for ``code``."""
        return cls(code, SERVER_ERROR_MESSAGES.get(code, "Server error"), data)

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            obj["data"] = self.data
        return obj


@dataclass(frozen=True, slots=True)
class Request:
    """A call or a notification from the peer.

    ``params`` is a tuple for positional params (also when absent) or a dict
    for named params. ``notification`` is true when the member ``id`` was
    absent: such a request must never be answered, not even with an error.
    """

    method: str
    params: Params = ()
    id: JsonId = None
    notification: bool = False


@dataclass(frozen=True, slots=True)
class Response:
    """A peer's answer to one of our requests: exactly one of result/error."""

    id: JsonId
    result: Any = None
    error: ErrorObject | None = None


@dataclass(frozen=True, slots=True)
class Invalid:
    """Input that must be answered with ``error`` (under ``id``, often null)."""

    error: ErrorObject
    id: JsonId = None


Item: TypeAlias = Request | Response | Invalid


@dataclass(frozen=True, slots=True)
class Decoded:
    """The result of :func:`decode`: the items, and whether they came as a batch."""

    items: list[Item] = field(default_factory=list)
    batch: bool = False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


#: One decoder for every frame and one encoder for every answer (json.loads and json.dumps
#: with these options would build one per call).
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float)
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

# A JSON string of valid JSON text (unrolled: no backtracking between alternatives).
_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET: Final = re.compile(r"[^\[\]{}]+")
# Each bracket as one signed step: +1 opens, -1 (0xff as a signed byte) closes.
_STEPS: Final = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def _too_deep(text: str, limit: int) -> bool:
    """Whether valid JSON ``text`` nests more than ``limit`` arrays and objects.

    Works on the text, not on the parsed value: strings are cut out and the
    brackets left are summed as +1/-1 steps, all in C (regular expressions,
    ``bytes.translate``, ``accumulate``). Text with at most ``limit`` opening
    brackets is answered without the sum, which covers ordinary messages.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if len(brackets) <= 2 * limit:
        return False
    steps = array("b", brackets.encode("ascii").translate(_STEPS))
    return max(accumulate(steps)) > limit


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int)


def _invalid(code: int, msg_id: JsonId = None, data: Any = None) -> Invalid:
    return Invalid(ErrorObject.standard(code, data), msg_id)


def _decode_error(obj: Mapping[str, Any], msg_id: JsonId) -> Item:
    err = obj["error"]
    if not isinstance(err, dict):
        return _invalid(INVALID_REQUEST, msg_id, "error must be an object")
    code, message = err.get("code"), err.get("message")
    if isinstance(code, bool) or not isinstance(code, int) or not isinstance(message, str):
        return _invalid(INVALID_REQUEST, msg_id, "error needs an integer code and a string message")
    return Response(msg_id, error=ErrorObject(code, message, err.get("data")))


def _decode_item(obj: Any) -> Item:
    """Classify one decoded JSON value as a Request, a Response or Invalid."""
    if not isinstance(obj, dict):
        return _invalid(INVALID_REQUEST, None, "expected a JSON object")
    has_id = "id" in obj
    raw_id = obj.get("id")
    msg_id: JsonId = raw_id if _valid_id(raw_id) else None
    if has_id and not _valid_id(raw_id):
        return _invalid(INVALID_REQUEST, None, "id must be a string, a number or null")
    if obj.get("jsonrpc") != VERSION:
        return _invalid(INVALID_REQUEST, msg_id, 'jsonrpc must be exactly "2.0"')
    if "method" in obj:
        method = obj["method"]
        if not isinstance(method, str):
            return _invalid(INVALID_REQUEST, msg_id, "method must be a string")
        if "result" in obj or "error" in obj:
            return _invalid(INVALID_REQUEST, msg_id, "a request has no result or error")
        # Absent params mean no arguments; an explicit null is not allowed.
        params = obj.get("params", [])
        if isinstance(params, list):
            params = tuple(params)
        elif not isinstance(params, dict):
            return _invalid(INVALID_REQUEST, msg_id, "params must be an array or an object")
        return Request(method, params, msg_id, notification=not has_id)
    if not has_id:
        return _invalid(INVALID_REQUEST, None, "a response needs an id")
    if ("result" in obj) == ("error" in obj):
        return _invalid(INVALID_REQUEST, msg_id, "a response has exactly one of result or error")
    if "error" in obj:
        return _decode_error(obj, msg_id)
    return Response(msg_id, result=obj["result"])


def batch_limit_data(max_batch: int) -> str:
    """The ``data`` of the -32600 that refuses a batch longer than ``max_batch``."""
    return f"at most {max_batch} calls per batch"


def decode(data: str | bytes, *, max_batch: int | None = None, max_depth: int = MAX_DEPTH) -> Decoded:
    """Decode one WebSocket text frame into JSON-RPC items.

    Never raises. Not JSON (or not UTF-8, NaN, Infinity, numbers out of range,
    nesting beyond the parser) gives one Parse error item with id null; an
    empty batch gives one Invalid Request item (not a batch, as the
    specification's examples show); anything nested deeper than
    ``max_depth`` gives Invalid Request.

    A batch of more than ``max_batch`` members (None: no limit) gives one
    Invalid Request item (``data`` ``"at most N calls per batch"``), not a
    batch. The checks run on the parsed array's length and on the text, in
    that order, before anything is built per member: refusing a 1 MiB array
    of half a million members costs one ``json.loads`` (docs/benchmarks.md).
    A batch text longer than 64 KiB is parsed one member at a time and
    refused once ``max_batch + 1`` members were read, whatever follows them
    (a 44 MB batch of a million calls costs 101 members, not 500 MB).
    A frame within the limits costs one ``json.loads`` plus a dataclass per
    member. What a frame may weigh in bytes is the caller's limit, checked
    before this is called (``max_message_size`` on handlers).
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        if len(text) > _LONG_TEXT and max_batch is not None and text.startswith("[", at := _skip_space(text)):
            value = _members(text, at, max_batch)
            if value is None:
                return Decoded([_invalid(INVALID_REQUEST, None, batch_limit_data(max_batch))])
        else:
            value = _DECODER.decode(text)  # a BOM (which json.loads names) fails here too
    except (ValueError, RecursionError, UnicodeDecodeError):
        return Decoded([_invalid(PARSE_ERROR)])
    if isinstance(value, list) and max_batch is not None and len(value) > max_batch:
        return Decoded([_invalid(INVALID_REQUEST, None, batch_limit_data(max_batch))])
    if _too_deep(text, max_depth):
        return Decoded([_invalid(INVALID_REQUEST, None, "nesting too deep")])
    return decode_value(value)


def decode_value(value: Any, *, max_batch: int | None = None) -> Decoded:
    """Classify an already parsed message (a MessagePack frame's value, see
    :mod:`.encodings`) as :func:`decode` does; never raises. Its depth is the
    caller's to check, as its size is."""
    if isinstance(value, list):
        if not value:
            return Decoded([_invalid(INVALID_REQUEST, None, "empty batch")])
        if max_batch is not None and len(value) > max_batch:
            return Decoded([_invalid(INVALID_REQUEST, None, batch_limit_data(max_batch))])
        return Decoded([_decode_item(obj) for obj in value], batch=True)
    return Decoded([_decode_item(value)])


# A batch in a text longer than this is parsed member by member (``_members``), so that
# refusing it costs max_batch + 1 members, not the whole text. Shorter texts (every frame of
# an RpcHandler at its default max_message_size) take one json.loads, as before.
_LONG_TEXT: Final = 64 * 1024
_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")


def _skip_space(text: str, index: int = 0) -> int:
    """The index of the first character at or after ``index`` that is not JSON whitespace."""
    match = _WHITESPACE.match(text, index)
    return index if match is None else match.end()


def _members(text: str, start: int, limit: int) -> list[Any] | None:
    """The members of the JSON array that opens at ``text[start]``, or ``None`` as soon as
    there are more than ``limit`` of them. Raises ``ValueError`` where ``json.loads`` would
    (within the members read): malformed text, extra data after the array."""
    skip, scan = _skip_space, _DECODER.raw_decode
    index = skip(text, start + 1)
    members: list[Any] = []
    if text.startswith("]", index):
        index += 1
    else:
        while True:
            value, index = scan(text, index)
            members.append(value)
            if len(members) > limit:
                return None
            index = skip(text, index)
            if text.startswith(",", index):
                index = skip(text, index + 1)
            elif text.startswith("]", index):
                index += 1
                break
            else:
                raise ValueError(f"expected ',' or ']' at {index}")
    if skip(text, index) != len(text):
        raise ValueError(f"extra data at {index}")
    return members


# Lone surrogates (a peer may send "\ud800") have no UTF-8 form; dumps escapes them.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def dumps(obj: Any) -> str:
    """Compact JSON, UTF-8 text kept as is. Raises :class:`EncodeError`. Always
    encodable as UTF-8: lone surrogates (only inside JSON strings) become ``\\uXXXX``."""
    try:
        text = _ENCODER.encode(obj)
    except (TypeError, ValueError, RecursionError) as exc:
        raise EncodeError(str(exc)) from exc
    if text.isascii():
        return text
    return _SURROGATE.sub(_escape_surrogate, text)


def params_of(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Params:
    """The params of a call made as ``f(*args, **kwargs)``: positional or named, never both.

    JSON-RPC 2.0 has no mixed form, so both at once raise ``TypeError``.
    """
    if args and kwargs:
        raise TypeError("JSON-RPC params are positional or named, not both")
    return dict(kwargs) if kwargs else tuple(args)


def _params_json(params: Params | Sequence[Any] | None) -> Any:
    if params is None:
        return None
    if isinstance(params, Mapping):
        return dict(params)
    if isinstance(params, str | bytes | bytearray):
        # A str is a Sequence: list("ab") would silently send ["a", "b"].
        raise EncodeError(f"params must be a sequence or a mapping, not {type(params).__name__}")
    return list(params)


def encode_request(method: str, params: Params | Sequence[Any] | None, msg_id: JsonId) -> str:
    """A call expecting an answer. ``params=None`` omits the member."""
    obj: dict[str, Any] = {"jsonrpc": VERSION, "method": method}
    if (p := _params_json(params)) is not None:
        obj["params"] = p
    obj["id"] = msg_id
    return dumps(obj)


def encode_notification(method: str, params: Params | Sequence[Any] | None = None) -> str:
    """A notification (no id, never answered). ``params=None`` omits the member."""
    obj: dict[str, Any] = {"jsonrpc": VERSION, "method": method}
    if (p := _params_json(params)) is not None:
        obj["params"] = p
    return dumps(obj)


def with_offset(text: str, offset: str) -> str:
    """An encoded notification (a JSON object) with the extension member
    ``"offset"`` added (connection recovery; see docs/protocol.md).
    ``offset`` is ``"<digits>-<digits>"``: nothing in it needs escaping."""
    return f'{text[:-1]},"offset":"{offset}"}}'


def result_response(msg_id: JsonId, result: Any) -> dict[str, Any]:
    """The response object (a dict, not text) carrying ``result`` (the Python client
    gathers these into a batch answer)."""
    return {"jsonrpc": VERSION, "result": result, "id": msg_id}


def error_response(msg_id: JsonId, error: ErrorObject) -> dict[str, Any]:
    """The response object (a dict, not text) carrying ``error``."""
    return {"jsonrpc": VERSION, "error": error.to_json(), "id": msg_id}


def encode_result(msg_id: JsonId, result: Any) -> str:
    """A result response as text. Raises :class:`EncodeError` for unencodable results."""
    return dumps(result_response(msg_id, result))


def encode_error(msg_id: JsonId, error: ErrorObject) -> str:
    """An error response as text; unencodable ``data`` is dropped rather than failing."""
    try:
        return dumps(error_response(msg_id, error))
    except EncodeError:
        return dumps(error_response(msg_id, ErrorObject(error.code, error.message)))


def encode_batch(responses: Sequence[Mapping[str, Any]]) -> str | None:
    """The answer to a batch: an array of responses, or ``None`` to send nothing.

    The specification forbids answering a batch of notifications with an
    empty array, so an empty list of responses gives ``None``. (The server
    joins encoded answers itself; the Python client uses this.)
    """
    if not responses:
        return None
    return dumps(list(responses))
