"""The JSON-RPC 2.0 codec: every rule of the specification, on plain strings."""

from __future__ import annotations

import json
import math
from types import MappingProxyType
from typing import Any

import pytest

from wsmanager_client import protocol
from wsmanager_client.protocol import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_DEPTH,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    EncodeError,
    ErrorObject,
    Invalid,
    Request,
    Response,
    decode,
)


def stable_id(value: Any) -> str:
    """A test id that is the same in every process (a bare object's repr holds its address)."""
    return "object()" if type(value) is object else repr(value)


def only(data: str | bytes, **limits: Any) -> Any:
    """The single item ``data`` decodes to (``limits``: decode's keywords), asserting it was not a batch."""
    decoded = decode(data, **limits)
    assert not decoded.batch
    assert len(decoded.items) == 1
    return decoded.items[0]


def assert_invalid(item: Any, code: int, msg_id: Any = None) -> None:
    """``item`` is an Invalid carrying the standard error ``code`` under ``msg_id``."""
    assert isinstance(item, Invalid)
    assert item.error.code == code
    assert item.error.message == protocol.SERVER_ERROR_MESSAGES[code]
    assert item.id == msg_id
    assert type(item.id) is type(msg_id)


def message(**members: Any) -> str:
    """A JSON object text with ``members`` (Python values dumped as JSON)."""
    return json.dumps(members)


# -- module surface -----------------------------------------------------------


def test_all_names_exist() -> None:
    """Every name in ``__all__`` is defined by the module."""
    missing = [name for name in protocol.__all__ if not hasattr(protocol, name)]
    assert missing == []


def test_standard_codes_have_the_specification_values() -> None:
    """The five standard error codes are those of section 5.1."""
    assert (PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR) == (
        -32700,
        -32600,
        -32601,
        -32602,
        -32603,
    )


def test_server_error_codes_are_in_the_reserved_range() -> None:
    """Library-defined codes lie in -32000..-32099, the implementation-defined range."""
    custom = set(protocol.SERVER_ERROR_MESSAGES) - {-32700, -32600, -32601, -32602, -32603}
    assert custom
    assert all(-32099 <= code <= -32000 for code in custom)


def test_standard_error_uses_the_specification_message() -> None:
    """ErrorObject.standard gives the message the specification names for a code."""
    assert ErrorObject.standard(PARSE_ERROR) == ErrorObject(-32700, "Parse error")
    assert ErrorObject.standard(INVALID_REQUEST).message == "Invalid Request"
    assert ErrorObject.standard(METHOD_NOT_FOUND).message == "Method not found"
    assert ErrorObject.standard(INVALID_PARAMS).message == "Invalid params"
    assert ErrorObject.standard(INTERNAL_ERROR).message == "Internal error"


def test_standard_error_of_unknown_code_is_server_error() -> None:
    """An unlisted code gets the generic message "Server error" and keeps its data."""
    assert ErrorObject.standard(-32099, {"x": 1}) == ErrorObject(-32099, "Server error", {"x": 1})


# -- requests -------------------------------------------------------------------


def test_request_with_positional_params() -> None:
    """An array of params becomes a tuple, in order."""
    item = only(message(jsonrpc="2.0", method="sum", params=[1, [2], {"a": 3}], id=1))
    assert item == Request("sum", (1, [2], {"a": 3}), 1, notification=False)


def test_request_with_named_params() -> None:
    """An object of params stays a dict with the same members."""
    item = only(message(jsonrpc="2.0", method="greet", params={"name": "Ada", "n": 2}, id="x"))
    assert item == Request("greet", {"name": "Ada", "n": 2}, "x")


def test_request_with_absent_params_has_empty_tuple() -> None:
    """A request without params is valid and has params ``()``."""
    item = only(message(jsonrpc="2.0", method="ping", id=7))
    assert item == Request("ping", (), 7, notification=False)


def test_request_with_empty_params() -> None:
    """Empty array and empty object params are both valid."""
    assert only(message(jsonrpc="2.0", method="m", params=[], id=1)).params == ()
    assert only(message(jsonrpc="2.0", method="m", params={}, id=1)).params == {}


def test_request_members_in_any_order() -> None:
    """Member order does not matter."""
    item = only('{"id":3,"params":[1],"method":"m","jsonrpc":"2.0"}')
    assert item == Request("m", (1,), 3)


def test_request_with_surrounding_whitespace() -> None:
    """Insignificant whitespace around and inside the text is accepted."""
    item = only(' \n\t{ "jsonrpc" : "2.0" , "method" : "m" , "id" : 1 }\r\n ')
    assert item == Request("m", (), 1)


def test_request_from_utf8_bytes() -> None:
    """Bytes in UTF-8 decode like the equivalent text."""
    text = message(jsonrpc="2.0", method="héllo", params=["ünï"], id="ß")
    assert decode(text.encode("utf-8")) == decode(text)
    assert only(text.encode("utf-8")) == Request("héllo", ("ünï",), "ß")


def test_request_with_extra_members_is_accepted() -> None:
    """Unknown members are ignored, as the specification does not forbid them."""
    item = only(message(jsonrpc="2.0", method="m", id=1, extra=True))
    assert item == Request("m", (), 1)


def test_request_with_result_member_is_invalid() -> None:
    """An object with both method and result is neither request nor response."""
    assert_invalid(only(message(jsonrpc="2.0", method="m", result=1, id=4)), INVALID_REQUEST, 4)


def test_request_with_error_member_is_invalid() -> None:
    """An object with both method and error is neither request nor response."""
    error = {"code": 1, "message": "x"}
    assert_invalid(only(message(jsonrpc="2.0", method="m", error=error, id=4)), INVALID_REQUEST, 4)


# -- notifications and ids ------------------------------------------------------


def test_notification_when_id_is_absent() -> None:
    """A request without the member id is a notification."""
    item = only(message(jsonrpc="2.0", method="update", params=[1, 2]))
    assert item == Request("update", (1, 2), None, notification=True)


def test_id_null_is_a_call_not_a_notification() -> None:
    """``"id": null`` is a (discouraged) call that must be answered, not a notification."""
    item = only(message(jsonrpc="2.0", method="m", id=None))
    assert item == Request("m", (), None, notification=False)


@pytest.mark.parametrize(
    "msg_id",
    ["abc", "", 0, -5, 12345678901234567890, 1.5, -0.25, 1e300, None],
    ids=[
        "str",
        "empty-str",
        "zero",
        "negative",
        "bigint",
        "float",
        "neg-float",
        "big-float",
        "null",
    ],
)
def test_valid_id_types_are_echoed_unchanged(msg_id: Any) -> None:
    """String, integer, float and null ids are kept with their exact value and type."""
    item = only(message(jsonrpc="2.0", method="m", id=msg_id))
    assert isinstance(item, Request)
    assert item.id == msg_id
    assert type(item.id) is type(msg_id)


@pytest.mark.parametrize("raw_id", ["true", "false", "{}", '{"a":1}', "[]", "[1]"], ids=str)
def test_invalid_id_types_give_invalid_request_with_null_id(raw_id: str) -> None:
    """Boolean, object and array ids are refused with Invalid Request and id null."""
    item = only('{"jsonrpc":"2.0","method":"m","id":' + raw_id + "}")
    assert_invalid(item, INVALID_REQUEST, None)


def test_invalid_id_on_a_response_gives_null_id() -> None:
    """A response with a boolean id is Invalid Request with id null."""
    assert_invalid(only('{"jsonrpc":"2.0","result":1,"id":true}'), INVALID_REQUEST, None)


def test_invalid_request_echoes_a_valid_id() -> None:
    """When the id itself is valid, the Invalid Request answer carries it."""
    assert_invalid(only(message(jsonrpc="1.0", method="m", id="req-9")), INVALID_REQUEST, "req-9")


# -- invalid request objects ----------------------------------------------------


@pytest.mark.parametrize(
    "version",
    ["1.0", 2.0, 2, "2", "2.0 ", None, ["2.0"]],
    ids=["str-1.0", "number-2.0", "int-2", "str-2", "trailing-space", "null", "array"],
)
def test_wrong_jsonrpc_version_is_invalid_request(version: Any) -> None:
    """Anything but the exact string "2.0" is Invalid Request."""
    assert_invalid(only(message(jsonrpc=version, method="m", id=1)), INVALID_REQUEST, 1)


def test_missing_jsonrpc_member_is_invalid_request() -> None:
    """A request without the member jsonrpc is Invalid Request."""
    assert_invalid(only(message(method="m", id=1)), INVALID_REQUEST, 1)


@pytest.mark.parametrize("method", [1, 1.5, None, True, [], {}], ids=repr)
def test_method_not_a_string_is_invalid_request(method: Any) -> None:
    """A non-string method is Invalid Request, echoing the id."""
    assert_invalid(only(message(jsonrpc="2.0", method=method, id=2)), INVALID_REQUEST, 2)


@pytest.mark.parametrize("params", ["bar", 1, 1.5, True, None], ids=repr)
def test_params_not_structured_is_invalid_request(params: Any) -> None:
    """Params that are neither an array nor an object (even null) are Invalid Request."""
    assert_invalid(only(message(jsonrpc="2.0", method="m", params=params, id=3)), INVALID_REQUEST, 3)


def test_invalid_notification_is_still_answered() -> None:
    """A malformed notification gives an Invalid item (with id null) to answer."""
    assert_invalid(only(message(jsonrpc="2.0", method=1)), INVALID_REQUEST, None)


@pytest.mark.parametrize("text", ["1", '"text"', "null", "true", "3.5"], ids=str)
def test_top_level_scalar_is_invalid_request(text: str) -> None:
    """A JSON value that is neither an object nor an array is Invalid Request."""
    assert_invalid(only(text), INVALID_REQUEST, None)


def test_object_without_method_result_or_error_is_invalid() -> None:
    """``{"jsonrpc": "2.0", "id": 1}`` is neither a request nor a response."""
    assert_invalid(only(message(jsonrpc="2.0", id=1)), INVALID_REQUEST, 1)


# -- parse errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "   ", "{", '{"jsonrpc": "2.0",}', "{'a': 1}", "[1,]", '{"a":1} x', "nul"],
    ids=repr,
)
def test_not_json_is_parse_error_with_null_id(text: str) -> None:
    """Text that is not JSON gives one Parse error with id null."""
    assert_invalid(only(text), PARSE_ERROR, None)


@pytest.mark.parametrize(
    "data",
    [b"\xff", b'{"method":"\xc3"}', b"\xed\xa0\x80", b'"\x80"'],
    ids=["ff", "truncated", "encoded-surrogate", "continuation"],
)
def test_invalid_utf8_bytes_are_parse_error(data: bytes) -> None:
    """Bytes that are not UTF-8 give a Parse error instead of raising."""
    assert_invalid(only(data), PARSE_ERROR, None)


def test_utf8_bom_is_parse_error() -> None:
    """A leading byte-order mark is not JSON text (RFC 8259 forbids sending one)."""
    assert_invalid(only(b'\xef\xbb\xbf{"jsonrpc":"2.0","method":"m"}'), PARSE_ERROR, None)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_parse_error(literal: str) -> None:
    """Python's extensions NaN/Infinity/-Infinity are not JSON."""
    assert_invalid(only(literal), PARSE_ERROR, None)
    assert_invalid(only('{"jsonrpc":"2.0","method":"m","params":[' + literal + '],"id":1}'), PARSE_ERROR)


@pytest.mark.parametrize("number", ["1e999", "-1e999", "1.5e400"])
def test_float_overflow_is_parse_error(number: str) -> None:
    """A number that overflows a double is refused instead of becoming infinity."""
    assert_invalid(only(f'{{"jsonrpc":"2.0","method":"m","params":[{number}],"id":1}}'), PARSE_ERROR)


def test_float_underflow_is_accepted_as_zero() -> None:
    """A number too small for a double is in range and reads as zero."""
    assert only('{"jsonrpc":"2.0","method":"m","params":[1e-999],"id":1}').params == (0.0,)


def test_huge_integer_literal_is_parse_error() -> None:
    """A 5000-digit integer (beyond Python's int conversion limit) is a Parse error."""
    assert_invalid(only("9" * 5000), PARSE_ERROR, None)
    assert_invalid(only('{"jsonrpc":"2.0","method":"m","id":' + "9" * 5000 + "}"), PARSE_ERROR)


def test_extremely_deep_nesting_is_parse_error() -> None:
    """100000 nested arrays or objects exceed the parser and give a Parse error."""
    assert_invalid(only("[" * 100_000), PARSE_ERROR, None)
    assert_invalid(only("[" * 100_000 + "]" * 100_000), PARSE_ERROR, None)
    assert_invalid(only('{"a":' * 100_000 + "1" + "}" * 100_000), PARSE_ERROR, None)


# -- nesting depth --------------------------------------------------------------


def nested_params(levels: int) -> str:
    """A request whose params are ``levels`` nested arrays."""
    return '{"jsonrpc":"2.0","method":"m","params":' + "[" * levels + "]" * levels + ',"id":1}'


def test_moderately_deep_params_are_invalid_request() -> None:
    """Params nested 100 levels deep parse but are refused as Invalid Request."""
    assert_invalid(only(nested_params(100)), INVALID_REQUEST, None)


def test_nesting_up_to_max_depth_is_accepted() -> None:
    """The request object plus params nest exactly MAX_DEPTH containers: accepted."""
    item = only(nested_params(MAX_DEPTH - 1))
    assert isinstance(item, Request)


def test_nesting_one_beyond_max_depth_is_refused() -> None:
    """One container more than MAX_DEPTH is Invalid Request."""
    assert_invalid(only(nested_params(MAX_DEPTH)), INVALID_REQUEST, None)


def test_brackets_inside_strings_are_not_nesting() -> None:
    """Depth counts containers, not bracket characters in strings (escaped quotes included)."""
    text = '\\"' + "[{" * 200
    item = only(json.dumps({"jsonrpc": "2.0", "method": "m", "params": [text], "id": 1}))
    assert item == Request("m", (text,), 1)


def test_many_shallow_containers_are_not_deep() -> None:
    """Ten thousand sibling arrays nest two levels: accepted, however many brackets."""
    params = [[] for _ in range(10_000)]
    item = only(json.dumps({"jsonrpc": "2.0", "method": "m", "params": params, "id": 1}))
    assert isinstance(item, Request) and len(item.params) == 10_000


def test_max_depth_is_a_parameter() -> None:
    """decode(max_depth=n) refuses n + 1 levels and accepts n."""
    assert_invalid(only('{"a":[[1]]}', max_depth=2), INVALID_REQUEST, None)
    assert isinstance(only('{"jsonrpc":"2.0","method":"m","params":[1]}', max_depth=2), Request)


def test_deep_named_params_are_invalid_request() -> None:
    """Deep nesting through objects is limited like nesting through arrays."""
    params = '{"a":' * 100 + "1" + "}" * 100
    assert_invalid(only('{"jsonrpc":"2.0","method":"m","params":' + params + "}"), INVALID_REQUEST)


# -- batches --------------------------------------------------------------------


def test_batch_of_requests_keeps_order() -> None:
    """A batch decodes to its items in order, flagged as a batch."""
    decoded = decode(
        "["
        + message(jsonrpc="2.0", method="a", id=1)
        + ","
        + message(jsonrpc="2.0", method="b", params=[2], id=2)
        + "]"
    )
    assert decoded.batch
    assert decoded.items == [Request("a", (), 1), Request("b", (2,), 2)]


def test_batch_of_one_is_still_a_batch() -> None:
    """A one-element array is a batch, answered with an array."""
    decoded = decode("[" + message(jsonrpc="2.0", method="a", id=1) + "]")
    assert decoded.batch
    assert decoded.items == [Request("a", (), 1)]


def test_single_object_is_not_a_batch() -> None:
    """A lone request object is not flagged as a batch."""
    assert not decode(message(jsonrpc="2.0", method="a", id=1)).batch


def test_batch_mixes_requests_notifications_and_invalid_members() -> None:
    """Each batch member is classified on its own; one bad member spoils nothing else."""
    decoded = decode(
        '[{"jsonrpc":"2.0","method":"a","id":1},'
        '{"jsonrpc":"2.0","method":"n","params":{"k":1}},'
        '{"jsonrpc":"1.0","method":"b","id":2},'
        '"text",'
        '{"jsonrpc":"2.0","result":5,"id":9}]'
    )
    assert decoded.batch
    first, notification, bad_version, not_object, response = decoded.items
    assert first == Request("a", (), 1)
    assert notification == Request("n", {"k": 1}, None, notification=True)
    assert_invalid(bad_version, INVALID_REQUEST, 2)
    assert_invalid(not_object, INVALID_REQUEST, None)
    assert response == Response(9, result=5)


def test_batch_of_only_notifications() -> None:
    """A batch of notifications decodes to notifications only, and gets no answer."""
    decoded = decode('[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"b","params":[]}]')
    assert decoded.batch
    assert all(isinstance(i, Request) and i.notification for i in decoded.items)


def test_batch_over_max_batch_is_one_invalid_request() -> None:
    """max_batch members are a batch; one more is one Invalid Request saying the limit."""
    members = ",".join(['{"jsonrpc":"2.0","method":"m","id":1}'] * 4)
    assert len(decode(f"[{members}]", max_batch=4).items) == 4
    item = only(f"[{members},1]", max_batch=4)
    assert_invalid(item, INVALID_REQUEST, None)
    assert item.error.data == "at most 4 calls per batch"


def test_an_oversized_batch_is_refused_before_any_member_is_looked_at(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Half a million members: refused on the array's length, no member classified."""
    seen: list[Any] = []
    monkeypatch.setattr(protocol, "_decode_item", seen.append)
    item = only("[" + ",".join(["0"] * 524_287) + "]", max_batch=100)
    assert_invalid(item, INVALID_REQUEST, None)
    assert seen == []


# A member big enough to take a text past 64 KiB (the member-by-member path).
BIG = '{"jsonrpc":"2.0","method":"m","params":["' + "x" * 70_000 + '"],"id":%d}'


@pytest.mark.parametrize(
    "text",
    [
        "[" + ",".join(BIG % i for i in range(5)) + "]",
        " \n[ " + " ,\t".join(BIG % i for i in range(5)) + " ]\r\n",
        "[" + ",".join([BIG % 1, "1", "[]", '{"a":[1,{"b":null}]}', BIG % 2, '"s"']) + "]",
        "[" + " " * 70_000 + "]",
        "[" + ",".join(BIG % i for i in range(5)) + ",]",
        "[" + ",".join(BIG % i for i in range(5)),
        "[" + ",".join(BIG % i for i in range(5)) + "]x",
        "[" + ",".join(BIG % i for i in range(5)) + "][]",
        "[" + BIG % 1 + " " + BIG % 2 + "]",
        "[" + BIG % 1 + ",NaN]",
        "[" + BIG % 1 + ',{"x": 1e999}]',
        "[" + BIG % 1 + "," + "[" * 70 + "]" * 70 + "]",
        "[" + BIG % 1 + "," + "[" * 5000 + "]" * 5000 + "]",
    ],
    ids=[
        "plain",
        "whitespace",
        "mixed-members",
        "empty",
        "trailing-comma",
        "unclosed",
        "extra-data",
        "two-arrays",
        "missing-comma",
        "nan",
        "out-of-range",
        "too-deep",
        "deeper-than-the-parser",
    ],
)
def test_a_long_batch_parsed_member_by_member_decodes_as_json_loads_would(text: str) -> None:
    """Past 64 KiB a batch is read one member at a time: within the limit, the items are the
    very ones the whole-text parse gives (valid or not)."""
    assert len(text) > 64 * 1024
    assert decode(text, max_batch=1000) == decode(text)


def test_a_long_batch_over_the_limit_is_refused_after_limit_plus_one_members(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A million members in 44 MB: refused once the 101st is read; what follows (here text
    that is not even JSON) is never looked at."""
    read: list[int] = []
    real = protocol._DECODER

    class Counting:
        def raw_decode(self, text: str, index: int = 0) -> tuple[Any, int]:
            read.append(index)
            return real.raw_decode(text, index)

        def decode(self, text: str) -> Any:
            raise AssertionError("the whole text must not be parsed")

    monkeypatch.setattr(protocol, "_DECODER", Counting())
    member = '{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}'
    text = "[" + ",".join([member] * 1_000_000) + ",garbage"
    item = only(text, max_batch=100)
    assert_invalid(item, INVALID_REQUEST, None)
    assert item.error.data == "at most 100 calls per batch"
    assert len(read) == 101


def test_a_long_object_is_still_parsed_whole() -> None:
    """Only batches take the member-by-member path: a long single call decodes as before."""
    item = only(BIG % 7, max_batch=1)
    assert isinstance(item, Request) and item.params == ("x" * 70_000,) and item.id == 7


def test_the_batch_limit_comes_before_the_depth_limit() -> None:
    """An array both too long and too deep is refused for its length."""
    item = only("[" + "[" * 100 + "]" * 100 + ",1,2]", max_batch=2)
    assert item.error.data == "at most 2 calls per batch"


def test_empty_batch_is_single_invalid_request() -> None:
    """``[]`` is answered with one Invalid Request object, not with an array."""
    decoded = decode("[]")
    assert not decoded.batch
    assert len(decoded.items) == 1
    assert_invalid(decoded.items[0], INVALID_REQUEST, None)


def test_nested_array_in_batch_is_invalid_member() -> None:
    """An array inside a batch is an invalid member, not a nested batch."""
    decoded = decode("[[]]")
    assert decoded.batch
    assert len(decoded.items) == 1
    assert_invalid(decoded.items[0], INVALID_REQUEST, None)


# -- responses from the peer ----------------------------------------------------


def test_response_with_result() -> None:
    """A result response decodes to Response(id, result)."""
    item = only(message(jsonrpc="2.0", result={"ok": [1, 2]}, id=5))
    assert item == Response(5, result={"ok": [1, 2]}, error=None)


def test_response_with_null_result() -> None:
    """``"result": null`` is a valid success response."""
    assert only(message(jsonrpc="2.0", result=None, id="a")) == Response("a", result=None)


def test_response_with_error() -> None:
    """An error response decodes to Response(id, error=ErrorObject(...))."""
    error = {"code": -32601, "message": "Method not found", "data": {"method": "x"}}
    item = only(message(jsonrpc="2.0", error=error, id=6))
    assert item == Response(6, error=ErrorObject(-32601, "Method not found", {"method": "x"}))


def test_response_error_with_null_id() -> None:
    """An error response with id null (the peer could not read our id) is valid."""
    item = only(message(jsonrpc="2.0", error={"code": -32700, "message": "Parse error"}, id=None))
    assert item == Response(None, error=ErrorObject(-32700, "Parse error"))


def test_response_with_both_result_and_error_is_invalid() -> None:
    """A response must not carry both result and error."""
    text = message(jsonrpc="2.0", result=1, error={"code": 1, "message": "x"}, id=7)
    assert_invalid(only(text), INVALID_REQUEST, 7)


def test_response_without_id_is_invalid() -> None:
    """A response must carry the member id."""
    assert_invalid(only(message(jsonrpc="2.0", result=1)), INVALID_REQUEST, None)


def test_response_with_wrong_version_is_invalid() -> None:
    """A response must carry jsonrpc "2.0" as well."""
    assert_invalid(only(message(jsonrpc="1.0", result=1, id=1)), INVALID_REQUEST, 1)


@pytest.mark.parametrize("error", ["boom", 1, None, [1, "x"]], ids=repr)
def test_response_error_not_an_object_is_invalid(error: Any) -> None:
    """The error member must be an object."""
    assert_invalid(only(message(jsonrpc="2.0", error=error, id=8)), INVALID_REQUEST, 8)


@pytest.mark.parametrize(
    "error",
    [
        {"code": "-32600", "message": "x"},
        {"code": -32600.0, "message": "x"},
        {"code": True, "message": "x"},
        {"code": None, "message": "x"},
        {"message": "x"},
        {"code": 1, "message": 5},
        {"code": 1, "message": None},
        {"code": 1},
    ],
    ids=[
        "code-str",
        "code-float",
        "code-bool",
        "code-null",
        "no-code",
        "msg-int",
        "msg-null",
        "no-msg",
    ],
)
def test_response_error_with_bad_code_or_message_is_invalid(error: dict[str, Any]) -> None:
    """The error needs an integer code and a string message."""
    assert_invalid(only(message(jsonrpc="2.0", error=error, id=9)), INVALID_REQUEST, 9)


# -- the specification's examples (section 7) -----------------------------------


def test_spec_example_positional_params() -> None:
    """rpc call with positional parameters."""
    item = only('{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}')
    assert item == Request("subtract", (42, 23), 1)
    item = only('{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}')
    assert item == Request("subtract", (23, 42), 2)


def test_spec_example_named_params() -> None:
    """rpc call with named parameters."""
    item = only(
        '{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}'
    )
    assert item == Request("subtract", {"subtrahend": 23, "minuend": 42}, 3)
    item = only(
        '{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}'
    )
    assert item == Request("subtract", {"minuend": 42, "subtrahend": 23}, 4)


def test_spec_example_notification() -> None:
    """a Notification, with and without params."""
    item = only('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}')
    assert item == Request("update", (1, 2, 3, 4, 5), None, notification=True)
    assert only('{"jsonrpc": "2.0", "method": "foobar"}') == Request("foobar", (), None, notification=True)


def test_spec_example_non_existent_method_decodes_as_request() -> None:
    """rpc call of a non-existent method: decoding yields a call to look up (answered -32601)."""
    item = only('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}')
    assert item == Request("foobar", (), "1")
    answer = json.loads(protocol.encode_error(item.id, ErrorObject.standard(METHOD_NOT_FOUND)))
    assert answer == {
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": "Method not found"},
        "id": "1",
    }


def test_spec_example_invalid_json() -> None:
    """rpc call with invalid JSON: Parse error, id null."""
    item = only('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    assert_invalid(item, PARSE_ERROR, None)
    assert json.loads(protocol.encode_error(item.id, item.error)) == {
        "jsonrpc": "2.0",
        "error": {"code": -32700, "message": "Parse error"},
        "id": None,
    }


def test_spec_example_invalid_request_object() -> None:
    """rpc call with invalid Request object: Invalid Request, id null."""
    item = only('{"jsonrpc": "2.0", "method": 1, "params": "bar"}')
    assert_invalid(item, INVALID_REQUEST, None)


def test_spec_example_batch_invalid_json() -> None:
    """rpc call Batch, invalid JSON: a single Parse error, not an array."""
    decoded = decode(
        '[\n  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},\n'
        '  {"jsonrpc": "2.0", "method"\n]'
    )
    assert not decoded.batch
    assert len(decoded.items) == 1
    assert_invalid(decoded.items[0], PARSE_ERROR, None)


def test_spec_example_empty_array() -> None:
    """rpc call with an empty Array: a single Invalid Request, not an array."""
    decoded = decode("[]")
    assert not decoded.batch
    assert len(decoded.items) == 1
    assert_invalid(decoded.items[0], INVALID_REQUEST, None)


def test_spec_example_invalid_batch_of_one() -> None:
    """rpc call with an invalid Batch (but not empty): ``[1]`` gives one Invalid Request."""
    decoded = decode("[1]")
    assert decoded.batch
    assert len(decoded.items) == 1
    assert_invalid(decoded.items[0], INVALID_REQUEST, None)


def test_spec_example_invalid_batch_of_three() -> None:
    """rpc call with invalid Batch: ``[1,2,3]`` gives three Invalid Requests."""
    decoded = decode("[1,2,3]")
    assert decoded.batch
    assert len(decoded.items) == 3
    for item in decoded.items:
        assert_invalid(item, INVALID_REQUEST, None)


def test_spec_example_mixed_batch() -> None:
    """rpc call Batch: calls, a notification and an invalid member, in order."""
    decoded = decode(
        """[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
        ]"""
    )
    assert decoded.batch
    items = decoded.items
    assert len(items) == 6
    assert items[0] == Request("sum", (1, 2, 4), "1")
    assert items[1] == Request("notify_hello", (7,), None, notification=True)
    assert items[2] == Request("subtract", (42, 23), "2")
    assert_invalid(items[3], INVALID_REQUEST, None)
    assert items[4] == Request("foo.get", {"name": "myself"}, "5")
    assert items[5] == Request("get_data", (), "9")


def test_spec_example_batch_all_notifications() -> None:
    """rpc call Batch (all notifications): nothing is returned."""
    decoded = decode(
        '[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},'
        ' {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]'
    )
    assert decoded.items == [
        Request("notify_sum", (1, 2, 4), None, notification=True),
        Request("notify_hello", (7,), None, notification=True),
    ]
    assert not [i for i in decoded.items if not (isinstance(i, Request) and i.notification)]


# -- encoders -------------------------------------------------------------------


def test_encode_request_is_compact() -> None:
    """encode_request writes compact JSON with no spaces."""
    text = protocol.encode_request("subtract", [42, 23], 1)
    assert text == '{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}'


def test_encode_request_with_named_params() -> None:
    """A mapping of params is written as a JSON object (any Mapping type)."""
    text = protocol.encode_request("m", MappingProxyType({"a": 1}), "x")
    assert text == '{"jsonrpc":"2.0","method":"m","params":{"a":1},"id":"x"}'


def test_encode_request_with_tuple_params() -> None:
    """A tuple of params is written as a JSON array."""
    assert json.loads(protocol.encode_request("m", (1, "b"), 2))["params"] == [1, "b"]


def test_encode_request_omits_params_when_none() -> None:
    """``params=None`` leaves the member out, but an empty list is sent."""
    assert protocol.encode_request("m", None, 1) == '{"jsonrpc":"2.0","method":"m","id":1}'
    assert json.loads(protocol.encode_request("m", [], 1))["params"] == []


def test_encode_request_with_null_id() -> None:
    """An explicit null id is written as ``"id":null`` (still a call)."""
    assert protocol.encode_request("m", None, None) == '{"jsonrpc":"2.0","method":"m","id":null}'


def test_encode_request_refuses_string_params() -> None:
    """A str is not split into characters: it raises EncodeError."""
    with pytest.raises(EncodeError):
        protocol.encode_request("m", "abc", 1)
    with pytest.raises(EncodeError):
        protocol.encode_notification("m", b"abc")


def test_encode_notification_has_no_id() -> None:
    """A notification omits the member id, and params when None."""
    assert protocol.encode_notification("tick") == '{"jsonrpc":"2.0","method":"tick"}'
    assert protocol.encode_notification("tick", {"n": 1}) == (
        '{"jsonrpc":"2.0","method":"tick","params":{"n":1}}'
    )


def test_encoders_keep_non_ascii_text() -> None:
    """Non-ASCII characters are written as UTF-8 text, not as \\u escapes."""
    text = protocol.encode_request("grüße", ["日本", "🙂"], "é")
    assert "grüße" in text and "日本" in text and "🙂" in text and '"é"' in text
    assert "\\u" not in text


def test_encoders_escape_lone_surrogates() -> None:
    """A lone surrogate (possible in a peer's id) is escaped so the text is valid UTF-8."""
    item = only('{"jsonrpc":"2.0","method":"m","id":"\\ud800é"}')
    assert item.id == "\ud800é"
    text = protocol.encode_result(item.id, "ü")
    text.encode("utf-8")
    assert "\\ud800" in text and "é" in text and "ü" in text
    assert only(text) == Response("\ud800é", result="ü")
    protocol.encode_error(item.id, ErrorObject.standard(INVALID_REQUEST)).encode("utf-8")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, object(), {1, 2}, b"bytes"], ids=stable_id)
def test_encode_request_unencodable_params_raise(value: Any) -> None:
    """NaN, infinities and non-JSON objects in params raise EncodeError."""
    with pytest.raises(EncodeError):
        protocol.encode_request("m", [value], 1)
    with pytest.raises(EncodeError):
        protocol.encode_notification("m", {"v": value})


def test_encode_error_is_a_value_error() -> None:
    """EncodeError is a ValueError, so callers catching ValueError see it."""
    assert issubclass(EncodeError, ValueError)


def test_encode_result_of_a_cycle_raises() -> None:
    """A self-referencing result raises EncodeError instead of recursing."""
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(EncodeError):
        protocol.encode_result(1, cycle)


@pytest.mark.parametrize("value", [math.nan, math.inf, object()], ids=stable_id)
def test_encode_result_unencodable_raises(value: Any) -> None:
    """An unencodable result raises EncodeError so the caller can answer -32603."""
    with pytest.raises(EncodeError):
        protocol.encode_result(1, {"x": value})


def test_encode_result_is_compact() -> None:
    """encode_result writes the response in the specification's shape, compactly."""
    assert protocol.encode_result(1, 19) == '{"jsonrpc":"2.0","result":19,"id":1}'
    assert protocol.encode_result("a", None) == '{"jsonrpc":"2.0","result":null,"id":"a"}'


def test_encode_error_omits_data_when_none() -> None:
    """An error without data has only code and message."""
    text = protocol.encode_error(None, ErrorObject.standard(PARSE_ERROR))
    assert text == '{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}'


def test_encode_error_keeps_encodable_data() -> None:
    """Encodable data is sent in the error object."""
    text = protocol.encode_error(3, ErrorObject(-32602, "Invalid params", {"missing": ["a"]}))
    assert json.loads(text)["error"] == {
        "code": -32602,
        "message": "Invalid params",
        "data": {"missing": ["a"]},
    }


@pytest.mark.parametrize("data", [object(), math.nan, {"x": math.inf}], ids=stable_id)
def test_encode_error_drops_unencodable_data(data: Any) -> None:
    """Unencodable data is dropped: the error itself is always sent."""
    text = protocol.encode_error(4, ErrorObject(-32603, "Internal error", data))
    assert json.loads(text) == {
        "jsonrpc": "2.0",
        "error": {"code": -32603, "message": "Internal error"},
        "id": 4,
    }


def test_error_response_is_a_dict() -> None:
    """error_response builds the response object, not text."""
    assert protocol.error_response("x", ErrorObject(1, "m", 2)) == {
        "jsonrpc": "2.0",
        "error": {"code": 1, "message": "m", "data": 2},
        "id": "x",
    }


def test_encode_result_is_compact_and_refuses_nan() -> None:
    """encode_result writes one compact response; an unencodable result raises EncodeError."""
    assert protocol.encode_result("1", 7) == '{"jsonrpc":"2.0","result":7,"id":"1"}'
    with pytest.raises(EncodeError):
        protocol.encode_result(1, math.nan)


def test_dumps_is_compact_and_keeps_unicode() -> None:
    """dumps is the encoders' serialiser: compact separators, UTF-8 text kept."""
    assert protocol.dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'


def test_encoded_request_decodes_back() -> None:
    """What encode_request writes, decode reads back as the same Request."""
    assert only(protocol.encode_request("m", {"k": [1.5]}, 9)) == Request("m", {"k": [1.5]}, 9)
    assert only(protocol.encode_notification("m")) == Request("m", (), None, notification=True)
