"""wsmanager.jsonrpc._declarations (exported by wsmanager.contract): annotations as JSON Schema,
declared params, declared errors."""

from __future__ import annotations

import ast
import dataclasses
import importlib
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, Optional, TypedDict, Union

import jsonschema
import pytest

from wsmanager.jsonrpc._declarations import (
    ClientMethod,
    ErrorCode,
    Notification,
    Param,
    declared_errors,
    declared_params,
    json_schema,
    raises,
)


class Point(TypedDict):
    x: int
    y: int
    label: NotRequired[str]


Keyword = TypedDict("Keyword", {"from": str, "class": NotRequired[int]})


class Tree(TypedDict):
    value: int
    children: list[Tree]


@dataclasses.dataclass
class Reading:
    sensor: str
    values: list[float]
    unit: str = "C"
    tags: list[str] = dataclasses.field(default_factory=list)


class Opaque:
    pass


@pytest.mark.parametrize(
    ("hint", "schema"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (None, {"type": "null"}),
        (type(None), {"type": "null"}),
        (Any, {}),
        (object, {}),
        (Opaque, {}),
        (list, {"type": "array"}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (tuple[int, str], {"type": "array"}),
        (dict, {"type": "object"}),
        (dict[str, Any], {"type": "object"}),
        (dict[str, bool], {"type": "object", "additionalProperties": {"type": "boolean"}}),
        (dict[int, bool], {"type": "object"}),
        (str | None, {"type": ["string", "null"]}),
        (Optional[int], {"type": ["integer", "null"]}),  # noqa: UP045 - the old spelling on purpose
        (Union[int, str], {"type": ["integer", "string"]}),  # noqa: UP007 - likewise
        (int | Any, {}),
        (list[int] | None, {"anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}]}),
        (Literal["a", "b", 3], {"enum": ["a", "b", 3]}),
        (Annotated[str, "a note"], {"type": "string"}),
    ],
)
def test_annotations_become_json_schema(hint: Any, schema: dict[str, Any]) -> None:
    """Each supported annotation gives its JSON Schema; unknown ones give {} (any value)."""
    assert json_schema(hint) == schema


def test_a_typeddict_is_an_object_whose_not_required_keys_are_optional() -> None:
    assert json_schema(Point) == {
        "title": "Point",
        "type": "object",
        "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}, "label": {"type": "string"}},
        "required": ["x", "y"],
    }


def test_a_typeddict_may_have_keys_that_are_python_keywords() -> None:
    schema = json_schema(Keyword)
    assert schema["properties"] == {"from": {"type": "string"}, "class": {"type": "integer"}}
    assert schema["required"] == ["from"]


def test_a_recursive_typeddict_stops_at_any_object() -> None:
    """A self-reference becomes a plain object instead of recursing forever."""
    schema = json_schema(Tree)
    assert schema["properties"]["children"] == {"type": "array", "items": {"type": "object"}}


def test_a_dataclass_is_an_object_whose_defaulted_fields_are_optional() -> None:
    schema = json_schema(Reading)
    assert schema["required"] == ["sensor", "values"]
    assert schema["properties"]["values"] == {"type": "array", "items": {"type": "number"}}
    assert set(schema["properties"]) == {"sensor", "values", "unit", "tags"}


@pytest.mark.parametrize(
    ("hint", "good", "bad"),
    [
        (str | None, [None, "x"], [1, []]),
        (list[int], [[], [1, 2]], [[1.5], ["a"], {}]),
        (dict[str, bool], [{}, {"a": True}], [{"a": 1}, []]),
        (Point, [{"x": 1, "y": 2}, {"x": 1, "y": 2, "label": "p"}], [{"x": 1}, {"x": "1", "y": 2}]),
        (Literal["a", 3], ["a", 3], ["b", 4]),
    ],
)
def test_the_schemas_accept_and_refuse_the_values_the_annotations_do(
    hint: Any, good: list[Any], bad: list[Any]
) -> None:
    """The generated schemas are real JSON Schema: jsonschema enforces them as the types mean."""
    validator = jsonschema.Draft7Validator(json_schema(hint))
    for value in good:
        assert validator.is_valid(value), value
    for value in bad:
        assert not validator.is_valid(value), value


def test_params_of_a_mapping_keeps_its_order_and_requires_every_param() -> None:
    assert declared_params({"b": int, "a": str}) == [Param("b", int, True), Param("a", str, True)]


def test_params_of_a_typeddict_follow_its_required_keys() -> None:
    expected = [Param("x", int, True), Param("y", int, True), Param("label", str, False)]
    assert declared_params(Point) == expected


@pytest.mark.parametrize("spec", [Opaque, {1: int}, ["a"], "text"])
def test_params_of_anything_else_is_a_type_error(spec: Any) -> None:
    with pytest.raises(TypeError, match="params must"):
        declared_params(spec)


def test_raises_stacks_declared_errors_in_order() -> None:
    empty = ErrorCode(4000, "Empty")
    long = ErrorCode(4001, "Too long")

    @raises(empty)
    @raises(long)
    def method() -> None: ...

    assert declared_errors(method) == (long, empty)
    assert declared_errors(lambda: None) == ()


def test_raises_refuses_what_is_not_an_error_code() -> None:
    with pytest.raises(TypeError, match="ErrorCode"):
        raises(4000)  # type: ignore[arg-type]


def test_declarations_default_to_named_params_and_any_result() -> None:
    assert Notification().params == {} and not Notification().by_position
    method = ClientMethod({"question": str})
    assert method.result is Any and not method.by_position


@pytest.mark.parametrize("module_name", ["wsmanager.contract"])
def test_contract_modules_declare_all_with_existing_names(module_name: str) -> None:
    """As tests/test_public_api.py checks for the other public modules."""
    module = importlib.import_module(module_name)
    assert len(module.__all__) == len(set(module.__all__))
    assert [name for name in module.__all__ if not hasattr(module, name)] == []


def test_the_contract_module_is_a_leaf() -> None:
    """The declarations import nothing from wsmanager, so any layer may use their types."""
    source = Path(importlib.import_module("wsmanager.jsonrpc._declarations").__file__ or "").read_text()
    tree = ast.parse(source)
    imported = [
        node.module or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and (node.level > 0 or (node.module or "").startswith("wsmanager"))
    ]
    imported += [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.startswith("wsmanager")
    ]
    assert imported == []
