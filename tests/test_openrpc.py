"""wsmanager.openrpc: a handler's OpenRPC document, valid against the OpenRPC meta-schema.

The meta-schema is the one the OpenRPC project publishes on npm
(@open-rpc/meta-schema, with the JSON Schema meta-schema it refers to,
@json-schema-tools/meta-schema), installed by ``make node-deps``.
"""

from __future__ import annotations

import io
import json
from typing import Any

import jsonschema
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from referencing import Registry
from referencing.jsonschema import DRAFT7

from demo_chat.handlers import ChatHandler
from demo_chat.live import LiveHandler
from tests.contract_handlers import ShopHandler
from tests.node_tools import json_schema_meta_schema, openrpc_meta_schema
from wsmanager import RpcHandler, rpc
from wsmanager.contract import OPENRPC_VERSION, ClientMethod, Notification, openrpc_document
from wsmanager.exceptions import ConfigurationError
from wsmanager_client.protocol import SERVER_ERROR_MESSAGES


def meta_validator(definition: str | None = None) -> jsonschema.Draft7Validator:
    """A validator for whole documents, or for one of the meta-schema's definitions."""
    openrpc = openrpc_meta_schema()
    tools = DRAFT7.create_resource(json_schema_meta_schema())
    registry: Registry[Any] = Registry().with_resources(
        [
            ("https://meta.json-schema.tools", tools),
            ("https://meta.json-schema.tools/", tools),
            (openrpc["$id"], DRAFT7.create_resource(openrpc)),
        ]
    )
    schema = openrpc if definition is None else {"$ref": f"{openrpc['$id']}#/definitions/{definition}"}
    return jsonschema.Draft7Validator(schema, registry=registry)


def assert_valid(document: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in meta_validator().iter_errors(document)]
    assert errors == []
    method = meta_validator("methodObject")
    for entry in [*document["x-notifications"], *document["x-client-methods"]]:
        assert [e.message for e in method.iter_errors(entry)] == [], entry["name"]


def by_name(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in entries}


@pytest.mark.parametrize(
    "handler", [ChatHandler, ShopHandler, LiveHandler], ids=["demo-chat", "shop", "live"]
)
def test_documents_are_valid_openrpc(handler: type[RpcHandler]) -> None:
    """The document, and each notification and client method in it, pass the OpenRPC meta-schema."""
    document = openrpc_document(handler)
    assert document["openrpc"] == OPENRPC_VERSION
    assert_valid(document)


def test_the_meta_schema_check_can_fail() -> None:
    """The validator is not vacuous: a document with a param without schema, or no info, fails."""
    document = openrpc_document(ChatHandler)
    broken = json.loads(json.dumps(document))
    method = next(m for m in broken["methods"] if m["params"])
    del method["params"][0]["schema"]
    assert not meta_validator().is_valid(broken)
    method["params"][0]["schema"] = {"type": "strin"}  # checked by the JSON Schema meta-schema
    assert not meta_validator().is_valid(broken)
    del document["info"]
    assert not meta_validator().is_valid(document)
    assert not meta_validator("methodObject").is_valid({"name": "x", "params": [{"name": "p"}]})


def test_the_demo_chat_document_names_its_methods_params_results_and_notifications() -> None:
    document = openrpc_document(ChatHandler, version="2.1.0")
    assert document["info"] == {
        "title": "chat",
        "version": "2.1.0",
        "description": "One chat participant in one room.",
    }
    methods = by_name(document["methods"])
    assert sorted(methods) == [
        "count",
        "rpc.close",
        "rpc.ping",
        "send",
        "set_name",
        "share",
        "whisper",
        "who",
    ]
    assert methods["share"]["x-upload"] == {"name": "chunks", "schema": {"type": "string"}}
    assert methods["rpc.close"]["params"][0]["name"] == "code"
    whisper = methods["whisper"]
    assert whisper["params"] == [
        {"name": "to", "schema": {"type": "string"}, "required": True},
        {"name": "text", "schema": {"type": "string"}, "required": True},
    ]
    assert whisper["result"]["schema"]["properties"] == {"delivered": {"type": "integer"}}
    assert whisper["summary"].startswith("Only member ``to``")
    assert "user:<pk>" in whisper["description"]
    assert {"code": 4004, "message": "No such member in this room"} in whisper["errors"]
    who = methods["who"]["result"]["schema"]
    assert who["type"] == "array" and who["items"]["required"] == ["id", "name"]
    limit = {"name": "limit", "schema": {"type": "integer", "default": 100}, "required": False}
    assert methods["who"]["params"] == [limit]
    assert methods["count"]["result"]["schema"] == {"type": "integer"}
    sent = by_name(document["x-notifications"])
    assert sorted(sent) == ["joined", "left", "message", "presence", "renamed", "rpc.connected"]
    message = sent["message"]
    assert message["paramStructure"] == "by-name"
    assert [(p["name"], p["required"]) for p in message["params"]] == [
        ("from", True),
        ("name", True),
        ("room", True),
        ("text", True),
        ("private", False),
        ("file", False),
    ]
    assert document["x-client-methods"] == []
    assert document["x-handler"] == {"name": "chat", "class": "demo_chat.handlers.ChatHandler"}


def test_every_library_error_code_is_a_component_and_calls_refer_to_their_own() -> None:
    document = openrpc_document(ShopHandler)
    errors = document["components"]["errors"]
    assert {e["code"]: e["message"] for e in errors.values()} == dict(SERVER_ERROR_MESSAGES)
    assert errors["InvalidParams"] == {"code": -32602, "message": "Invalid params"}
    methods = by_name(document["methods"])
    refs = {e["$ref"].rsplit("/", 1)[1] for e in methods["order"]["errors"] if "$ref" in e}
    assert refs == {"InvalidParams", "InternalError", "ServerBusy", "RateLimited", "Unavailable"}
    assert {"code": 4100, "message": "Out of stock"} in methods["order"]["errors"]
    for guarded in ("refund", "stats"):
        assert {"$ref": "#/components/errors/Forbidden"} in methods[guarded]["errors"]
    assert methods["refund"]["x-permission"] == "shop.refund"
    assert methods["stats"]["x-permission"] == "is_clerk"
    for entry in methods["order"]["errors"]:
        if "$ref" in entry:
            assert entry["$ref"].rsplit("/", 1)[1] in errors


def test_params_follow_the_signature() -> None:
    """Required from defaults, default values shown, structure from positional-only / keyword-only."""
    methods = by_name(openrpc_document(ShopHandler)["methods"])
    search = methods["shop.search"]
    optional_tags = {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]}
    assert search["paramStructure"] == "by-position"
    assert search["params"] == [
        {"name": "query", "schema": {"type": "string"}, "required": True},
        {"name": "limit", "schema": {"type": "integer", "default": 10}, "required": False},
        {
            "name": "tags",
            "schema": {**optional_tags, "default": None},
            "required": False,
        },
    ]
    assert methods["refund"]["paramStructure"] == "by-name"
    assert methods["order"]["paramStructure"] == "either"
    order = methods["order"]["params"][0]["schema"]
    assert order["required"] == ["item", "quantity"] and "note" in order["properties"]
    receipt = methods["order"]["result"]["schema"]
    assert receipt["title"] == "Receipt" and receipt["required"] == ["order_id", "total"]
    assert methods["refund"]["result"]["schema"] == {"type": "null"}
    # Unannotated and variadic: any value, and *rest / **extra are not listed.
    assert methods["anything"]["params"] == [{"name": "value", "schema": {}, "required": True}]
    assert methods["anything"]["result"]["schema"] == {}


def test_declared_notifications_and_client_methods_are_listed_with_their_structure() -> None:
    document = openrpc_document(ShopHandler)
    sent = by_name(document["x-notifications"])
    assert sent["tick"]["paramStructure"] == "by-position"
    assert [p["name"] for p in sent["tick"]["params"]] == ["count", "label"]
    assert sent["closing"]["params"] == [] and "result" not in sent["closing"]
    assert sent["rpc.connected"]["params"][0]["name"] == "id"
    called = by_name(document["x-client-methods"])
    assert called["confirm"]["result"] == {"name": "result", "schema": {"type": "boolean"}}
    assert called["confirm"]["summary"] == "Ask the user."
    assert called["address"]["params"][0]["schema"] == {"enum": ["fr", "de"]}


def test_the_document_is_deterministic_json() -> None:
    first = json.dumps(openrpc_document(ShopHandler))
    assert json.dumps(openrpc_document(ShopHandler)) == first


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"sends": ["message"]}, "must map names to Notification"),
        ({"sends": {"message": {"text": str}}}, "must be a Notification"),
        ({"sends": {"rpc.x": Notification()}}, "not a method name"),
        ({"client_methods": {"ask": Notification()}}, "must be a ClientMethod"),
        ({"sends": {"message": Notification(params=int)}}, "mapping or a TypedDict"),
    ],
)
def test_malformed_declarations_are_configuration_errors(attrs: dict[str, Any], message: str) -> None:
    handler = type("Malformed", (RpcHandler,), {"abstract": True, **attrs})
    with pytest.raises(ConfigurationError, match=message):
        openrpc_document(handler)


def test_a_handler_with_nothing_declared_still_has_a_valid_document() -> None:
    class Bare(RpcHandler):
        abstract = True

        @rpc
        async def ping_me(self) -> str:
            return "ok"

    document = openrpc_document(Bare)
    assert "description" not in document["info"]  # not RpcHandler's own docstring
    assert [n["name"] for n in document["x-notifications"]] == ["rpc.connected"]
    assert_valid(document)


def test_schema_command_writes_the_document_to_stdout_and_to_a_file(tmp_path: Any) -> None:
    out = io.StringIO()
    call_command("wsmanager", "schema", "chat", "--api-version", "3", stdout=out)
    printed = json.loads(out.getvalue())
    assert printed == openrpc_document(ChatHandler, version="3")
    target = tmp_path / "chat.openrpc.json"
    call_command("wsmanager", "schema", "tests.contract_handlers.ShopHandler", "--output", str(target))
    assert json.loads(target.read_text()) == openrpc_document(ShopHandler)
    assert_valid(json.loads(target.read_text()))


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no-such-handler", "no handler is named"),
        ("tests.contract_handlers.Order", "not an RpcHandler"),
        ("wsmanager.handlers._handler.WebSocketHandler", "not an RpcHandler"),
    ],
)
def test_schema_command_refuses_what_is_not_an_rpc_handler(target: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("wsmanager", "schema", target, stdout=io.StringIO())


def test_declaration_types_are_usable_without_django_or_a_handler() -> None:
    """ClientMethod and Notification are plain frozen values."""
    assert ClientMethod({"q": str}, result=bool) == ClientMethod({"q": str}, result=bool)
    with pytest.raises(AttributeError):
        Notification().description = "x"  # type: ignore[misc]


def test_schema_command_without_a_handler_asks_for_one_when_several_exist() -> None:
    """This process knows at least "chat" and "tests.shop": the command names them."""
    with pytest.raises(CommandError, match=r"name the handler; known handlers: .*chat.*tests\.shop"):
        call_command("wsmanager", "schema", stdout=io.StringIO())


def test_topics_are_described_when_a_handler_declares_them() -> None:
    """rpc.subscribe / rpc.unsubscribe with their refusal codes, rpc.publication, and x-topics
    with each pattern's parameters and events; none of it for a handler without topics."""
    document = openrpc_document(LiveHandler)
    methods = by_name(document["methods"])
    subscribe = methods["rpc.subscribe"]
    assert [p["name"] for p in subscribe["params"]] == ["topic", "since"]
    assert {e["code"] for e in subscribe["errors"] if "code" in e} == {-32010, -32011, -32012}
    assert subscribe["result"]["schema"]["required"] == ["topic", "offset", "epoch", "recovered"]
    assert "rpc.unsubscribe" in methods
    assert "rpc.publication" in by_name(document["x-notifications"])
    tasks, user = document["x-topics"]
    assert (tasks["pattern"], tasks["authorized"], tasks["initialState"]) == ("tasks", False, True)
    assert set(tasks["events"]) == {"created", "updated", "deleted"}
    assert tasks["events"]["created"]["properties"]["done"] == {"type": "boolean"}
    assert user["parameters"] == {"id": {"type": "integer", "minimum": 0}} and user["authorized"] is True
    chat = openrpc_document(ChatHandler)
    assert "x-topics" not in chat and "rpc.subscribe" not in by_name(chat["methods"])


def test_a_streaming_method_is_marked_with_its_item_schema_and_stream_errors() -> None:
    """An ``@rpc`` async generator: ``x-stream`` holds the item's schema, ``result`` the end."""
    methods = by_name(openrpc_document(ShopHandler)["methods"])
    receipts = methods["receipts"]
    assert receipts["x-stream"]["name"] == "item"
    assert receipts["x-stream"]["schema"]["title"] == "Receipt"
    assert receipts["result"]["schema"] == {
        "type": "object",
        "properties": {"items": {"type": "integer"}},
        "required": ["items"],
    }
    assert {"code": -32020, "message": "Too many streams"} in receipts["errors"]
    assert {"code": -32021, "message": "Stream cancelled"} in receipts["errors"]
    assert all("x-stream" not in m for name, m in methods.items() if name != "receipts")


def test_a_method_reading_an_upload_is_marked_with_its_item_schema() -> None:
    """The ``AsyncIterator[T]`` parameter is not a param: ``x-upload`` names it, with T's schema."""
    restock = by_name(openrpc_document(ShopHandler)["methods"])["restock"]
    assert [p["name"] for p in restock["params"]] == ["note"]
    assert restock["x-upload"]["name"] == "items"
    assert restock["x-upload"]["schema"]["title"] == "Order"
    assert {"code": -32020, "message": "Too many streams"} in restock["errors"]
