"""``wsmanager.jsonrpc._params``: binding a call's params to an ``@rpc`` method's signature."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from wsmanager.jsonrpc._params import BadParams, Method


class Methods:
    async def plain(self, text: str, count: int) -> None: ...

    async def defaulted(self, text: str, count: int = 1) -> None: ...

    async def starred(self, *rest: int, **named: str) -> None: ...

    async def keyword_only(self, text: str, *, count: int = 1) -> None: ...


def method(name: str) -> Method:
    return Method.of(name, getattr(Methods, name))


def test_positional_or_keyword_signatures_take_the_shortcut_and_others_do_not() -> None:
    assert (method("plain").plain, method("plain").required) == (("text", "count"), 2)
    assert (method("defaulted").plain, method("defaulted").required) == (("text", "count"), 1)
    assert method("starred").plain is None
    assert method("keyword_only").plain is None


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("plain", ("a", 2)),
        ("plain", {"text": "a", "count": 2}),
        ("defaulted", ("a",)),
        ("defaulted", ("a", 3)),
        ("defaulted", {"text": "a"}),
        ("defaulted", {"count": 3, "text": "a"}),  # bound in the signature's order
        ("keyword_only", {"text": "a", "count": 2}),
        ("starred", (1, 2, 3)),
        ("starred", {"x": "y"}),
    ],
)
def test_binding_is_what_signature_bind_gives(name: str, params: tuple[Any, ...] | dict[str, Any]) -> None:
    """The shortcut for an array of plain params gives the same bound arguments as
    ``inspect.Signature.bind`` (the method's args and kwargs are taken from them)."""
    m = method(name)
    bound = m.bind(params)
    expected = m.signature.bind(**params) if isinstance(params, dict) else m.signature.bind(*params)
    assert isinstance(bound, inspect.BoundArguments)
    assert (bound.args, bound.kwargs) == (expected.args, expected.kwargs)
    assert list(bound.arguments.items()) == list(expected.arguments.items())


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("plain", ("a", "two"), "count must be int"),
        ("plain", (1, 2), "text must be str"),  # the first parameter that does not fit is named
        ("plain", ("a", True), "count must be int"),
        ("plain", ("a",), "missing a required argument: 'count'"),
        ("plain", ("a", 2, 3), "too many positional arguments"),
        ("defaulted", ("a", "x"), "count must be int"),
        ("defaulted", (), "missing a required argument: 'text'"),
        ("defaulted", ("a", 2, 3), "too many positional arguments"),
        ("defaulted", {"count": 2}, "missing a required argument: 'text'"),
        ("defaulted", {"text": "a", "other": 1}, "unexpected keyword argument 'other'"),
        ("defaulted", {"text": "a", "count": "x"}, "count must be int"),
        ("starred", ("x",), None),  # *args and **kwargs are not checked
    ],
)
def test_params_that_do_not_fit_raise_bad_params(
    name: str, params: tuple[Any, ...] | dict[str, Any], message: str | None
) -> None:
    m = method(name)
    if message is None:
        assert m.bind(params).args == params
        return
    with pytest.raises(BadParams) as raised:
        m.bind(params)
    assert message in str(raised.value)
