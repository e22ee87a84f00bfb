"""``wsmanager._handler_classes``: handler classes by name, as presence and the command find them."""

from __future__ import annotations

import warnings

import pytest

from wsmanager import ConfigurationError, WebSocketHandler
from wsmanager import _handler_classes as catalog


def test_a_concrete_handler_is_found_by_its_name() -> None:
    class Found(WebSocketHandler):
        handler_name = "tests.catalog.found"

    assert catalog.handler_class("tests.catalog.found") is Found
    assert "tests.catalog.found" in catalog.handler_names()


def test_an_abstract_base_is_not_listed() -> None:
    class Base(WebSocketHandler):
        handler_name = "tests.catalog.base"
        abstract = True

    assert "tests.catalog.base" not in catalog.handler_names()


def test_an_unknown_name_says_which_names_are_known() -> None:
    with pytest.raises(ConfigurationError, match=r"no handler is named 'nope' \(known: .*tests"):
        catalog.handler_class("nope")


def test_the_default_name_is_module_and_qualified_name() -> None:
    class Plain(WebSocketHandler):
        pass

    where = "test_the_default_name_is_module_and_qualified_name.<locals>"
    assert Plain.handler_name == f"{__name__}.{where}.Plain"


def test_a_name_attribute_is_the_handlers_own_not_its_handler_name() -> None:
    """``handler_name`` is the one spelling; an attribute called ``name`` means nothing to
    wsmanager (0.x accepted it with a DeprecationWarning; it was removed before 1.0)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class Titled(WebSocketHandler):
            name = "a title the handler uses for itself"

    where = "test_a_name_attribute_is_the_handlers_own_not_its_handler_name.<locals>"
    assert Titled.handler_name == f"{__name__}.{where}.Titled"
    assert "a title the handler uses for itself" not in catalog.handler_names()


def test_presence_hook_is_declared_on_the_base_class() -> None:
    assert callable(WebSocketHandler.on_presence)
