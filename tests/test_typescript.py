"""wsmanager.typescript: generated .d.ts declarations, checked with the real TypeScript compiler.

Right snippets must compile; each wrong one (a misspelt method, a wrong
param type, a missing param, a wrong handler) must fail on the marked line,
and the same wrong snippets compile against the untyped ``Client``, so the
failures come from the generated declarations.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from demo_chat.handlers import ChatHandler
from tests.contract_handlers import ShopHandler
from tests.node_tools import CLIENT_DTS, require, tsc
from wsmanager.contract import openrpc_document
from wsmanager.contract._typescript import interface_name, ts_type, typescript_declarations

PRELUDE = {
    "chat": 'import { Client } from "./wsmanager.js";\n'
    'import type { ChatClient } from "./chat.js";\n'
    'const client: ChatClient = new Client("/ws/chat/lobby/");\n',
    "shop": 'import { Client } from "./wsmanager.js";\n'
    'import type { ShopClient } from "./shop.js";\n'
    'const client: ShopClient = new Client("/ws/shop/");\n',
    "live": 'import { Client, ErrorCodes, RpcError, Subscription } from "./wsmanager.js";\n'
    'import type { LiveClient } from "./live.js";\n'
    'const client: LiveClient = new Client("/ws/live/");\n',
}

RIGHT = {
    "chat": """
export async function main(): Promise<number> {
  const sent = await client.invoke("send", "hello");
  const whispered = await client.invoke("whisper", "user:1", "psst");
  const name: string = await client.invoke("set_name", "ann");
  const members = await client.invoke("who");
  const tabs = members.map((m) => (m.sockets ?? 1) + (m.name ?? name).length);
  await client.invokeWithOptions("whisper", { to: "user:1", text: "hi" }, { timeout: 5000 });
  await client.invokeWithOptions("send", ["hi"]);
  await client.invokeWithOptions("who");
  const shared = await client.upload("share", ["one ", "two"], ["notes.txt"]);
  client.notify("send", "fire and forget");
  const stop = client.on("message", ({ from, name: who, room, text, private: whisper }) =>
    console.log(from ?? "http", who, room, text, whisper === true));
  client.on("joined", (member) => console.log(member.id, member.user ?? "anonymous"));
  client.on("left", ({ id }) => id.length);
  client.on("renamed", null);
  client.off("joined");
  stop();
  await client.connect();
  client.close();
  return sent.delivered + whispered.delivered + tabs.length + shared.delivered;
}
""",
    "shop": """
export async function main(): Promise<number> {
  const receipt = await client.invoke("order", { item: "tea", quantity: 2 });
  await client.invoke("order", { item: "tea", quantity: 2, note: "green" }, true);
  const found: string[] = await client.invoke("shop.search", "tea", 5, null);
  await client.invokeWithOptions("shop.search", ["tea"]);
  const nothing: null = await client.invokeWithOptions("refund", { order_id: 1 });
  const stats = await client.invoke("stats");
  let paid = 0;
  for await (const r of client.stream("receipts", 3)) paid += r.total + r.order_id;
  for await (const r of client.streamWithOptions("receipts", { since: 3 }, { window: 8 })) paid += r.total;
  const signal = new AbortController().signal;
  paid += await client.upload("restock", [{ item: "tea", quantity: 1 }], [], { signal });
  async function* lines() { yield { item: "milk", quantity: 2 }; }
  paid += await client.upload("restock", lines(), { note: "weekly" });
  for await (const r of client.streamWithOptions("receipts", [3, 10], { signal })) paid += r.total;
  for await (const r of client.stream("receipts", 3, { signal })) paid += r.total;
  for await (const r of client.stream("receipts", 3, 10, { signal, window: 4 })) paid += r.total;
  for await (const r of client.stream("receipts", 3, null, { window: 4 })) paid += r.total;
  client.on("confirm", (question) => question.endsWith("?"));
  client.on("confirm", async () => true);
  client.on("address", ({ country }) => ({ country, city: country === "fr" ? "Paris" : "Berlin" }));
  client.on("tick", (count, label) => console.log(count + 1, label ?? ""));
  client.on("stock", ({ item, left }) => console.log(item, left));
  client.on("closing", () => undefined);
  client.on("wave", () => "anything");
  return receipt.total + receipt.order_id + found.length + (nothing ?? 0) + (stats["tea"] ?? 0) + paid;
}
""",
    "live": """
export async function main(): Promise<number> {
  const titles: string[] = [];
  const tasks = await client.subscribe("tasks", (p) => {
    if (p.event === "deleted") titles.splice(0, 1);
    else titles.push(p.data.title + (p.data.done ? " (done)" : ""));
  }, {
    since: { offset: 3, epoch: "e" },
    onUnrecovered: ({ topic, since, position, reason }) =>
      console.log(topic, since.offset, position?.epoch, reason === "history" || reason === "epoch"),
    onError: (error) => console.log(error),
    persist: false,
  });
  const own: Subscription<{ text: string }> = await client.subscribe("user.42", (p) =>
    console.log(p.data.text));
  tasks.addEventListener("subscribed", (e) => console.log(e.recovered, e.resubscribe, e.offset));
  tasks.addEventListener("unrecovered", (e) => console.log(e.reason, e.since.epoch));
  own.addEventListener("unsubscribed", (e) => console.log(e.error));
  try {
    await client.subscribe("user.7", () => undefined);
  } catch (err) {
    if (err instanceof RpcError && err.code === ErrorCodes.TOPIC_NOT_AUTHORIZED) console.log("refused");
  }
  for await (const change of client.stream("changes", 10)) titles.push(change.task.title + change.offset);
  const signal: AbortSignal | undefined = undefined;
  for await (const change of client.stream("changes", { signal })) titles.push(change.task.title);
  await own.unsubscribe();
  const { offset, epoch } = tasks.position ?? { offset: 0, epoch: "" };
  const counts = tasks.duplicates + titles.length + (tasks.active ? 1 : 0) + client.ignoredPublications;
  return offset + epoch.length + counts;
}
""",
}

# Each wrong snippet: (handler, body); the line marked "// error" must fail, and nothing else.
WRONG = {
    "misspelt_method": ("chat", 'client.invoke("sned", "hello"); // error'),
    "wrong_param_type": ("chat", 'client.invoke("send", 42); // error'),
    "missing_param": ("chat", 'client.invoke("whisper", "user:1"); // error'),
    "extra_param": ("chat", 'client.invoke("who", "room"); // error'),
    "wrong_named_param": ("chat", 'client.invokeWithOptions("whisper", { to: "x", txt: "y" }); // error'),
    "misspelt_notification": ("chat", 'client.on("mesage", () => undefined); // error'),
    "misspelt_notify": ("chat", 'client.notify("sendd", "x"); // error'),
    "wrong_off": ("chat", 'client.off("joind"); // error'),
    "positional_call_of_a_by_name_method": ("shop", 'client.invoke("refund", 1); // error'),
    "by_name_call_of_a_by_position_method": (
        "shop",
        'client.invokeWithOptions("shop.search", { query: "tea" }); // error',
    ),
    "wrong_literal": (
        "shop",
        'client.on("address", ({ country }) => (country === "uk" ? {} : {})); // error',
    ),
    "stream_param_type": ("shop", 'client.stream("receipts", "3"); // error'),
    "streaming_method_invoked": ("shop", 'client.invoke("receipts", 3); // error'),
    "upload_item_type": ("shop", 'client.upload("restock", [{ item: 1 }], []); // error'),
    "unknown_topic": ("live", 'client.subscribe("taks", () => undefined); // error'),
    "topic_parameter_not_a_number": ("live", 'client.subscribe("user.ann", () => undefined); // error'),
}
# Wrong because of wsmanager.d.ts itself, typed client or not.
CLIENT_TYPES_WRONG = {
    "misspelt_subscribe_option": ("live", 'client.subscribe("tasks", () => 1, { sinse: null }); // error'),
    "since_without_epoch": ("live", 'client.subscribe("tasks", () => 1, { since: { offset: 1 } }); // error'),
    "subscription_is_a_promise": ("live", 'client.subscribe("tasks", () => 1).unsubscribe(); // error'),
}
# Wrong only because of the generated types' params and results (the plain Client allows them).
TYPED_ONLY = {
    "wrong_result_use": (
        "chat",
        'client.invoke("send", "x").then((r) => r.delivered.toUpperCase()); // error',
    ),
    "wrong_notification_field": ("chat", 'client.on("message", (m) => m.txt); // error'),
    "wrong_client_method_answer": ("shop", 'client.on("confirm", () => "yes"); // error'),
    "wrong_stream_item_use": (
        "shop",
        'void (async () => { for await (const r of client.stream("receipts", 1)) '
        "r.total.toUpperCase(); })(); // error",
    ),
    "wrong_stream_option_type": ("shop", 'client.stream("receipts", 3, { window: "8" }); // error'),
    "wrong_stream_signal_type": ("shop", 'client.stream("receipts", 3, { signal: true }); // error'),
    "misspelt_stream_option": ("shop", 'client.stream("receipts", 3, { signl: null }); // error'),
    "empty_stream_options": ("shop", 'client.stream("receipts", 3, {}); // error'),
    "stream_options_not_last": ("shop", 'client.stream("receipts", { window: 1 }, 3); // error'),
    "wrong_publication_field": ("live", 'client.subscribe("tasks", (p) => p.data.name); // error'),
    "wrong_event_name": ("live", 'client.subscribe("tasks", (p) => p.event === "removed"); // error'),
}


def write_declarations(directory: Path) -> None:
    """wsmanager.d.ts, plus chat.d.ts and shop.d.ts generated by the management command."""
    shutil.copy(CLIENT_DTS, directory / "wsmanager.d.ts")
    call_command("wsmanager", "typescript", "chat", "--output", str(directory / "chat.d.ts"))
    call_command("wsmanager", "typescript", "tests.shop", "--output", str(directory / "shop.d.ts"))
    call_command("wsmanager", "typescript", "live", "--output", str(directory / "live.d.ts"))


def write_untyped(directory: Path) -> None:
    """The control: the same names, bound to the plain Client."""
    shutil.copy(CLIENT_DTS, directory / "wsmanager.d.ts")
    for name, iface in (("chat", "ChatClient"), ("shop", "ShopClient"), ("live", "LiveClient")):
        (directory / f"{name}.d.ts").write_text(
            f'import type {{ Client }} from "./wsmanager.js";\nexport type {iface} = Client;\n'
        )


def write_snippets(directory: Path, snippets: dict[str, tuple[str, str]]) -> dict[str, int]:
    """One .ts file per snippet (wrapped in a function); the line number of each "// error" mark."""
    marks = {}
    for name, (handler, body) in snippets.items():
        text = PRELUDE[handler] + "export function wrong(): void {\n  " + body + "\n}\n"
        (directory / f"{name}.ts").write_text(text)
        marks[name] = next(i for i, line in enumerate(text.splitlines(), 1) if "// error" in line)
    return marks


@pytest.fixture
def typed_dir(tmp_path: Path) -> Path:
    require("typescript")
    directory = tmp_path / "typed"
    directory.mkdir()
    write_declarations(directory)
    return directory


def test_right_snippets_compile(typed_dir: Path) -> None:
    """Correct use of every method, notification and client method of both handlers compiles."""
    for handler, body in RIGHT.items():
        (typed_dir / f"right_{handler}.ts").write_text(PRELUDE[handler] + body)
    files = ("right_chat.ts", "right_shop.ts", "right_live.ts", "chat.d.ts", "shop.d.ts", "live.d.ts")
    code, errors, output = tsc(typed_dir, *files)
    assert (code, errors) == (0, []), output


def test_each_wrong_snippet_fails_on_its_marked_line(typed_dir: Path) -> None:
    snippets = {**WRONG, **TYPED_ONLY, **CLIENT_TYPES_WRONG}
    marks = write_snippets(typed_dir, snippets)
    code, errors, output = tsc(typed_dir, *(f"{name}.ts" for name in snippets))
    assert code != 0, output
    for name, line in marks.items():
        mine = [e for e in errors if e.file == f"{name}.ts"]
        # type errors, not a syntax error (TS1xxx) or an unresolved import (TS2307)
        assert all(not e.code.startswith("TS1") and e.code != "TS2307" for e in mine), output
        lines = {e.line for e in mine}
        assert lines == {line}, f"{name}: errors on lines {sorted(lines)}, expected {line}\n{output}"


def test_the_wrong_names_and_params_compile_against_the_untyped_client(tmp_path: Path) -> None:
    """The control: without the generated declarations the same snippets compile."""
    require("typescript")
    write_untyped(tmp_path)
    write_snippets(tmp_path, WRONG)
    code, errors, output = tsc(tmp_path, *(f"{name}.ts" for name in WRONG))
    assert (code, errors) == (0, []), output


def test_client_module_sets_the_import_path(tmp_path: Path) -> None:
    """Declarations kept elsewhere import wsmanager.d.ts from the path given."""
    require("typescript")
    shutil.copy(CLIENT_DTS, tmp_path / "wsmanager.d.ts")
    (tmp_path / "types").mkdir()
    out = io.StringIO()
    call_command("wsmanager", "typescript", "chat", "--client-module", "../wsmanager.js", stdout=out)
    assert 'from "../wsmanager.js";' in out.getvalue()
    (tmp_path / "types" / "chat.d.ts").write_text(out.getvalue())
    (tmp_path / "use.ts").write_text(
        PRELUDE["chat"].replace("./chat.js", "./types/chat.js") + 'client.invoke("who");\n'
    )
    code, errors, output = tsc(tmp_path, "use.ts")
    assert (code, errors) == (0, []), output


def test_the_command_prints_what_the_generator_makes() -> None:
    out = io.StringIO()
    call_command("wsmanager", "typescript", "chat", stdout=out)
    assert out.getvalue() == typescript_declarations(openrpc_document(ChatHandler))


def test_only_members_with_something_to_type_are_replaced() -> None:
    """A handler that declares nothing it sends keeps the untyped on/off."""
    document = openrpc_document(ChatHandler)
    document["x-notifications"] = [n for n in document["x-notifications"] if n["name"] == "rpc.connected"]
    text = typescript_declarations(document)
    assert 'Omit<Client, "invoke" | "invokeWithOptions" | "notify" | "upload">' in text  # share: an upload
    assert "on(method" not in text and "rpc." not in text.split("import", 1)[1]


def test_docstrings_and_declared_errors_become_jsdoc() -> None:
    text = typescript_declarations(openrpc_document(ShopHandler))
    assert "   * Place an order.\n   *\n   * Express orders cost more." in text
    assert "   * - 4100: Out of stock" in text
    tricky = typescript_declarations({"methods": [{"name": "m", "summary": "a */ b", "params": []}]})
    assert "a *\\/ b" in tricky and "a */ b" not in tricky  # the comment cannot be closed early


@pytest.mark.parametrize(
    ("schema", "ts"),
    [
        ({}, "unknown"),
        ({"type": "string"}, "string"),
        ({"type": "integer"}, "number"),
        ({"type": "number"}, "number"),
        ({"type": "boolean"}, "boolean"),
        ({"type": "null"}, "null"),
        ({"type": ["string", "null"]}, "string | null"),
        ({"anyOf": [{"type": "integer"}, {}]}, "unknown"),
        ({"enum": ["a", 1, None]}, '"a" | 1 | null'),
        ({"const": "pong"}, '"pong"'),
        ({"type": "array"}, "unknown[]"),
        ({"type": "array", "items": {"type": ["string", "null"]}}, "(string | null)[]"),
        ({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}, "[string, number]"),
        ({"type": "object"}, "{ [key: string]: unknown }"),
        ({"type": "object", "additionalProperties": {"type": "integer"}}, "{ [key: string]: number }"),
        (
            {"type": "object", "properties": {"from": {}, "a-b": {"type": "string"}}, "required": ["from"]},
            '{ from: unknown; "a-b"?: string }',
        ),
        (
            {
                "type": "array",
                "items": {"type": "object", "properties": {"a": {"type": ["integer", "null"]}}},
            },
            "{ a?: number | null }[]",
        ),
        ({"$ref": "#/components/schemas/X"}, "unknown"),
    ],
)
def test_schemas_become_typescript_types(schema: dict[str, Any], ts: str) -> None:
    assert ts_type(schema) == ts


@pytest.mark.parametrize(
    ("document", "name"),
    [
        ({"x-handler": {"class": "demo_chat.handlers.ChatHandler"}}, "ChatClient"),
        ({"x-handler": {"class": "app.Lobby"}}, "LobbyClient"),
        ({"info": {"title": "tests.shop-front"}}, "TestsShopFrontClient"),
        ({"info": {"title": "9lives"}}, "Handler9livesClient"),
    ],
)
def test_interface_names_come_from_the_class_or_the_title(document: dict[str, Any], name: str) -> None:
    assert interface_name(document) == name


def test_topics_become_typed_subscribe_overloads() -> None:
    """One ``subscribe`` per pattern: its names as a literal or template literal type, its
    events as a union of the client's ``Publication<D, E>``, one per event; the client's topic types
    imported only then. (Compiled against the client's wsmanager.d.ts where it declares
    ``subscribe``: see the clients' tests.)"""
    from demo_chat.live import LiveHandler
    from wsmanager.contract._typescript import topic_type

    text = typescript_declarations(openrpc_document(LiveHandler))
    imported = (
        "import type { Client, InvokeOptions, StreamOptions, TrailingStreamOptions, Publication, "
        "SubscribeOptions, Subscription }"
    )
    assert imported in text
    assert 'extends Omit<Client, "stream" | "streamWithOptions" | "subscribe">' in text  # changes: a stream
    task = "{ id: number; title: string; done: boolean }"
    union = " | ".join(f'Publication<{task}, "{name}">' for name in ("created", "deleted", "updated"))
    assert (
        f'subscribe(topic: "tasks", onPublication: (publication: {union}, '
        f"subscription: Subscription<{task}>) => void, options?: SubscribeOptions): "
        f"Promise<Subscription<{task}>>;"
    ) in text
    assert "subscribe(topic: `user.${number}`" in text and 'Publication<{ text: string }, "notice">' in text
    assert "Publication" not in typescript_declarations(openrpc_document(ChatHandler))
    assert topic_type("order.<slug:ref>.`x`${y}") == "`order.${string}.\\`x\\`\\${y}`"


def test_a_stream_param_the_client_could_take_for_options_is_never_last_without_options() -> None:
    """The client takes a last argument of only ``signal``/``window`` keys for the options: a
    stream whose last param could be such an object gets no overload that ends with it, so a
    typed call cannot send its param as options by mistake; options after it are declared."""
    filters = {"name": "filter", "schema": {"type": "object"}, "required": False}
    limit = {"name": "limit", "schema": {"type": "integer"}, "required": False}
    document = {"methods": [{"name": "watch", "params": [limit, filters], "x-stream": {"schema": {}}}]}
    lines = [line.strip() for line in typescript_declarations(document).splitlines() if "stream(" in line]
    returns = "AsyncGenerator<unknown, void, undefined>;"
    assert lines == [
        f'stream(method: "watch"): {returns}',
        f'stream(method: "watch", limit: number): {returns}',
        f'stream(method: "watch", options: TrailingStreamOptions): {returns}',
        f'stream(method: "watch", limit: number, options: TrailingStreamOptions): {returns}',
        f'stream(method: "watch", limit: number, filter: {{ [key: string]: unknown }}, '
        f"options: TrailingStreamOptions): {returns}",
    ]
    closed = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    document["methods"][0]["params"] = [limit, {"name": "f", "schema": closed, "required": False}]
    text = typescript_declarations(document)
    assert (
        'stream(method: "watch", limit?: number, f?: { q: string }): ' in text
    )  # `q` required: never options
