"""The demo chat's generated contract holds against the real server: what it sends
and answers fits the schemas, and params the schemas refuse are refused."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from demo_chat.handlers import ChatHandler
from tests.e2e.client import Peer, chat_url
from tests.servers import DaphneProcess
from wsmanager.contract import openrpc_document

pytestmark = pytest.mark.e2e

DOCUMENT = openrpc_document(ChatHandler)
METHODS = {m["name"]: m for m in DOCUMENT["methods"]}
SENT = {n["name"]: n for n in DOCUMENT["x-notifications"]}


def params_schema(entry: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a by-name params object, from the entry's content descriptors."""
    return {
        "type": "object",
        "properties": {p["name"]: p["schema"] for p in entry["params"]},
        "required": [p["name"] for p in entry["params"] if p["required"]],
        "additionalProperties": False,
    }


def check_result(method: str, result: Any) -> None:
    jsonschema.validate(result, METHODS[method]["result"]["schema"])


def check_notification(message: dict[str, Any]) -> None:
    jsonschema.validate(message["params"], params_schema(SENT[message["method"]]))


async def test_results_and_notifications_fit_the_declared_schemas(demo_server: DaphneProcess) -> None:
    """Each call's result and each notification the server sends validates against the document."""
    a = await Peer.open(chat_url(demo_server, "contract", "?name=ann"))
    check_notification({"method": "rpc.connected", "params": {"id": a.id}})
    b = await Peer.open(chat_url(demo_server, "contract"))
    check_notification(await a.notification("joined"))
    check_result("who", await a.call("who"))
    check_result("send", await a.call("send", "hello"))
    check_notification(await a.notification("message"))  # the sender hears its own message too
    check_notification(await b.notification("message"))
    check_result("whisper", await b.call("whisper", a.id, "psst"))
    whisper = await a.notification("message")
    assert whisper["params"]["private"] is True
    check_notification(whisper)
    check_result("set_name", await b.call("set_name", "bob"))
    check_notification(await a.notification("renamed"))
    check_result("rpc.ping", await a.call("rpc.ping"))
    await b.close()
    check_notification(await a.notification("left"))
    await a.close()


async def test_params_the_schema_refuses_are_refused_with_invalid_params(demo_server: DaphneProcess) -> None:
    """A wrong type or a missing param (per the document) gets -32602; app errors come as declared."""
    peer = await Peer.open(chat_url(demo_server, "contract-bad"))
    send = params_schema(METHODS["send"])
    for bad in ({"text": 5}, {}):
        assert not jsonschema.Draft7Validator(send).is_valid(bad)
        reply = await peer.request("send", **bad)
        assert reply["error"]["code"] == -32602, reply
    reply = await peer.request("send", text="   ")
    declared = [e["code"] for e in METHODS["send"]["errors"] if "code" in e]
    assert reply["error"]["code"] in declared
    await peer.close()
