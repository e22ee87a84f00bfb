"""Property-based tests of the JSON-RPC codec: decode never raises, encoders round-trip."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wsmanager_client import protocol
from wsmanager_client.protocol import ErrorObject, Invalid, Request, Response, decode

SETTINGS = settings(max_examples=300, deadline=None)

# Text that may hold lone surrogates, which a peer can send as "\ud800" escapes.
any_text = st.text(st.characters() | st.characters(categories=["Cs"]))


def json_values(floats: st.SearchStrategy[float], text: st.SearchStrategy[str]) -> Any:
    """Any JSON value built from ``floats`` and ``text`` leaves."""
    leaves = st.none() | st.booleans() | st.integers() | floats | text
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5),
        max_leaves=20,
    )


finite = st.floats(allow_nan=False, allow_infinity=False)
# What json.dumps can write, NaN and Infinity included (decode must refuse those).
loose_json = json_values(st.floats(), any_text)
strict_json = json_values(finite, st.text())
ids = st.text() | st.integers() | st.none()

# Objects shaped like JSON-RPC messages, so the validator's branches are all reached.
message_like = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2.0, None, "2.0 "]),
        "method": st.text(max_size=5) | loose_json,
        "params": st.lists(loose_json, max_size=3) | st.dictionaries(st.text(), loose_json) | loose_json,
        "id": ids | st.booleans() | finite | loose_json,
        "result": loose_json,
        "error": st.fixed_dictionaries(
            {},
            optional={
                "code": st.integers() | loose_json,
                "message": st.text() | loose_json,
                "data": loose_json,
            },
        )
        | loose_json,
    },
)
documents = message_like | st.lists(message_like | loose_json, max_size=5) | loose_json


def check_decoded(decoded: protocol.Decoded) -> None:
    """Every item is well-formed, and every Invalid item has a sendable answer."""
    assert decoded.items
    if not decoded.batch:
        assert len(decoded.items) == 1
    for item in decoded.items:
        assert isinstance(item, Request | Response | Invalid)
        if isinstance(item, Request):
            assert isinstance(item.method, str)
            assert isinstance(item.params, tuple | dict)
            assert not (item.notification and item.id is not None)
        if isinstance(item, Response):
            assert (item.error is None) or (item.result is None)
        if isinstance(item, Invalid):
            text = protocol.dumps(protocol.error_response(item.id, item.error))
            text.encode("utf-8")
            answer = json.loads(text)
            assert set(answer) == {"jsonrpc", "error", "id"}
            assert answer["jsonrpc"] == "2.0"
            code, message = answer["error"]["code"], answer["error"]["message"]
            assert isinstance(code, int) and not isinstance(code, bool)
            assert isinstance(message, str)
            assert answer["id"] is None or isinstance(answer["id"], str | int | float)
            assert not isinstance(answer["id"], bool)


@SETTINGS
@given(any_text)
def test_decode_never_raises_for_any_text(text: str) -> None:
    """Arbitrary text (lone surrogates included) decodes without raising."""
    check_decoded(decode(text))


@SETTINGS
@given(st.binary())
def test_decode_never_raises_for_any_bytes(data: bytes) -> None:
    """Arbitrary bytes decode without raising."""
    check_decoded(decode(data))


@SETTINGS
@given(loose_json)
def test_decode_never_raises_for_any_json_value(value: Any) -> None:
    """Any JSON value, NaN and Infinity included, decodes without raising."""
    text = json.dumps(value)
    check_decoded(decode(text))
    check_decoded(decode(text.encode("utf-8", "surrogatepass")))


@SETTINGS
@given(documents)
def test_decode_never_raises_for_message_like_documents(value: Any) -> None:
    """Near-miss JSON-RPC objects and batches decode to well-formed items."""
    check_decoded(decode(json.dumps(value)))


@SETTINGS
@given(
    st.text(),
    st.lists(strict_json, max_size=5) | st.dictionaries(st.text(), strict_json, max_size=5),
    ids,
)
def test_request_round_trip(method: str, params: Any, msg_id: Any) -> None:
    """decode(encode_request(m, p, i)) is one Request with the same method, params and id."""
    decoded = decode(protocol.encode_request(method, params, msg_id))
    assert not decoded.batch
    [item] = decoded.items
    expected = tuple(params) if isinstance(params, list) else params
    assert item == Request(method, expected, msg_id, notification=False)
    assert type(item.id) is type(msg_id)
    assert protocol.dumps(item.params) == protocol.dumps(expected)


@SETTINGS
@given(
    st.text(),
    st.lists(strict_json, max_size=5) | st.dictionaries(st.text(), strict_json, max_size=5),
)
def test_notification_round_trip(method: str, params: Any) -> None:
    """decode(encode_notification(m, p)) is one notification with the same method and params."""
    [item] = decode(protocol.encode_notification(method, params)).items
    expected = tuple(params) if isinstance(params, list) else params
    assert item == Request(method, expected, None, notification=True)
    assert protocol.dumps(item.params) == protocol.dumps(expected)


@SETTINGS
@given(ids, strict_json)
def test_result_round_trip(msg_id: Any, result: Any) -> None:
    """decode(encode_result(i, r)) is a Response with that id and result."""
    [item] = decode(protocol.encode_result(msg_id, result)).items
    assert item == Response(msg_id, result=result, error=None)
    assert protocol.dumps(item.result) == protocol.dumps(result)


@SETTINGS
@given(ids, st.integers(), st.text(), strict_json)
def test_error_round_trip(msg_id: Any, code: int, message: str, data: Any) -> None:
    """decode(encode_error(i, e)) is a Response carrying the same error."""
    [item] = decode(protocol.encode_error(msg_id, ErrorObject(code, message, data))).items
    assert item == Response(msg_id, error=ErrorObject(code, message, data))


@SETTINGS
@given(any_text | st.integers() | st.none(), loose_json)
def test_encoded_answers_are_valid_utf8_or_refused(msg_id: Any, result: Any) -> None:
    """Encoders either raise EncodeError or give text that is valid UTF-8 and decodes back."""
    try:
        text = protocol.encode_result(msg_id, result)
    except protocol.EncodeError:
        return
    [item] = decode(text.encode("utf-8")).items
    assert item == Response(msg_id, result=result)


def reference_depth(value: Any) -> int:
    """Nesting depth by walking the parsed value (what the decoder measures on the text)."""
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    return 0


# Strings full of brackets, quotes and backslashes, which must not count as nesting.
bracket_text = st.text(st.sampled_from('[]{}"\\,:ab'), max_size=8)


@SETTINGS
@given(json_values(finite, bracket_text), st.integers(min_value=0, max_value=6), st.booleans())
def test_depth_limit_agrees_with_a_walk_of_the_value(value: Any, limit: int, ascii_only: bool) -> None:
    """The text-based depth check refuses exactly the values deeper than the limit."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    items = decode(text, max_depth=limit).items
    refused = len(items) == 1 and isinstance(items[0], Invalid) and items[0].error.data == "nesting too deep"
    assert refused == (reference_depth(value) > limit)


PAD = "p" * 66_000  # takes any batch past 64 KiB, onto the member-by-member path


@settings(max_examples=100, deadline=None)
@given(st.lists(strict_json | message_like, max_size=8), st.integers(min_value=0, max_value=10**6))
def test_a_long_batch_decodes_member_by_member_as_the_whole_text_would(members: list[Any], cut: int) -> None:
    """Past 64 KiB a batch is parsed one member at a time: for any array, and for any prefix
    of its text (mostly malformed), the items are those of the whole-text parse."""
    text = json.dumps([PAD, *members])
    for candidate in (text, text[: 1 + cut % len(text)]):
        if len(candidate) > 64 * 1024:
            assert decode(candidate, max_batch=10**6) == decode(candidate)
