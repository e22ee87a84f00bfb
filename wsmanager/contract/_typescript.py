"""A handler's contract as TypeScript declarations: ``manage.py wsmanager typescript``.

:func:`typescript_declarations` turns the OpenRPC document of
:mod:`wsmanager.contract._openrpc` into a ``.d.ts`` module declaring one interface,
``<Name>Client`` (``ChatHandler`` gives ``ChatClient``), on top of the
browser client's own declarations (``wsmanager.d.ts``)::

    import { Client } from "./wsmanager.js";
    import type { ChatClient } from "./chat.js";   // the generated chat.d.ts
    const client: ChatClient = new Client("/ws/chat/lobby/");
    await client.invoke("send", "hello");          // checked: name, params, result
    client.on("message", ({ name, text }) => ...); // checked: name, params

The interface is the ``Client`` with ``invoke``, ``invokeWithOptions`` and
``notify`` replaced by one overload per ``@rpc`` method (a streaming method,
marked ``x-stream``, gets ``stream`` and ``streamWithOptions`` overloads
returning ``AsyncGenerator<Item>`` instead, and one reading an upload,
marked ``x-upload``, an ``upload`` overload), and ``on`` and
``off`` by one per declared notification and client method. So a misspelt
method name, a param of the wrong type, a missing param or a wrong handler
fails to compile. A member is replaced only when the handler has something
to put there: a handler that declares nothing it sends keeps the untyped
``on``. Names starting with ``rpc.`` are the client's own and are left out.

Guarantees: the output depends only on the document (deterministic), and
every JSON Schema the generator does not know becomes ``unknown``, never an
error. Not guaranteed: types say what the handler *declares*; the server
checks params against the annotations at run time, but not what it sends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = ["interface_name", "ts_type", "typescript_declarations"]

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
#: Words that cannot name a parameter in TypeScript (strict mode).
_RESERVED_WORDS: Final = (
    "break case catch class const continue debugger default delete do else enum export extends false "
    "finally for function if implements import in instanceof interface let new null package private "
    "protected public return static super switch this throw true try typeof var void while with "
    "yield await arguments eval"
)
_RESERVED: Final = frozenset(_RESERVED_WORDS.split())


def interface_name(document: Mapping[str, Any]) -> str:
    """``ChatClient`` for the class ``ChatHandler`` (or for the title ``chat``)."""
    handler = document.get("x-handler") or {}
    base = str(handler.get("class", "")).rsplit(".", 1)[-1].removesuffix("Handler")
    if not base:
        title = str(document.get("info", {}).get("title", ""))
        base = "".join(word.capitalize() for word in re.split(r"[^A-Za-z0-9]+", title))
    base = re.sub(r"[^A-Za-z0-9_$]", "", base)
    if not base or base[0].isdigit():
        base = f"Handler{base}"
    return f"{base}Client"


def typescript_declarations(document: Mapping[str, Any], *, client_module: str = "./wsmanager.js") -> str:
    """The ``.d.ts`` text for ``document``; ``client_module`` is where ``wsmanager.d.ts`` is imported from."""
    name = interface_name(document)
    methods = [m for m in document.get("methods", []) if not str(m["name"]).startswith("rpc.")]
    sent = [n for n in document.get("x-notifications", []) if not str(n["name"]).startswith("rpc.")]
    called = list(document.get("x-client-methods", []))
    replaced: list[str] = []
    members: list[str] = []
    plain = [m for m in methods if not m.get("x-stream") and not m.get("x-upload")]
    uploading = [m for m in methods if m.get("x-upload")]
    streaming = [m for m in methods if m.get("x-stream")]
    if plain:
        replaced += ["invoke", "invokeWithOptions", "notify"]
        for method in plain:
            members += _server_method(method)
    if streaming:
        replaced += ["stream", "streamWithOptions"]
        for method in streaming:
            members += _stream_method(method)
    if uploading:
        replaced.append("upload")
        for method in uploading:
            members += _upload_method(method)
    if sent or called:
        replaced += ["on", "off"]
        members += [line for n in sent for line in _on(n, answers=False)]
        members += [line for c in called for line in _on(c, answers=True)]
        served = " | ".join(dict.fromkeys(_literal(m["name"]) for m in [*sent, *called]))
        members += [
            "  /** Stop serving a notification or client method. */",
            f"  off(method: {served}): void;",
        ]
    topics = list(document.get("x-topics", []))
    if topics:
        replaced.append("subscribe")
        members += [line for t in topics for line in _subscribe(t)]
    handler = document.get("x-handler") or {}
    title = handler.get("name") or document.get("info", {}).get("title", "")
    imported = "Client, InvokeOptions" + (", StreamOptions, TrailingStreamOptions" if streaming else "")
    imported += ", Publication, SubscribeOptions, Subscription" if topics else ""
    lines = [
        f"// Generated by `manage.py wsmanager typescript` from the handler {json.dumps(title)}"
        + (f" ({handler['class']})" if handler.get("class") else "")
        + ".",
        "// Do not edit: regenerate it when the handler changes.",
        *(
            [f"// Encodings it accepts: {', '.join(encodings)} (docs/protocol.md, section 15)."]
            if (encodings := [str(e["name"]) for e in document.get("x-encodings", [])])
            else []
        ),
        f"import type {{ {imported} }} from {json.dumps(client_module)};",
        "",
        *_jsdoc(
            (document.get("info", {}).get("description") or "")
            + f"\n\nThe client of {json.dumps(title)}, typed: "
            + f"`const client: {name} = new Client(url)`.",
            "",
        ),
    ]
    omitted = " | ".join(_literal(m) for m in replaced)
    base = f"Omit<Client, {omitted}>" if replaced else "Client"
    lines.append(f"export interface {name} extends {base} {{")
    lines += members
    lines.append("}")
    return "\n".join(lines) + "\n"


def _server_method(method: Mapping[str, Any]) -> list[str]:
    literal = _literal(method["name"])
    params = list(method.get("params", []))
    structure = method.get("paramStructure", "either")
    result = ts_type(method.get("result", {}).get("schema", {}))
    doc = _method_doc(method)
    out: list[str] = []
    if structure != "by-name":
        positional = _positional(params)
        out += [*_jsdoc(doc), f"  invoke(method: {literal}{_leading(positional)}): Promise<{result}>;"]
        out += [
            f"  /** Call {json.dumps(method['name'])} as a notification: no answer, no result. */",
            f"  notify(method: {literal}{_leading(positional)}): void;",
        ]
    return out + _with_options("invokeWithOptions", method, "InvokeOptions", f"Promise<{result}>", doc)


def _stream_method(method: Mapping[str, Any]) -> list[str]:
    literal = _literal(method["name"])
    params = list(method.get("params", []))
    structure = method.get("paramStructure", "either")
    item = ts_type(method["x-stream"].get("schema", {}))
    returns = f"AsyncGenerator<{item}, void, undefined>"
    doc = "\n\n".join(part for part in (_method_doc(method), "A stream: iterate with `for await`.") if part)
    out = _stream_overloads(literal, params, returns, doc) if structure != "by-name" else []
    return out + _with_options("streamWithOptions", method, "StreamOptions", returns, doc)


def _with_options(name: str, method: Mapping[str, Any], options: str, returns: str, doc: str) -> list[str]:
    """The ``invokeWithOptions`` / ``streamWithOptions`` overload of ``method``: its params as
    an array, an object, or either (its ``paramStructure``), optional when none is required."""
    params = list(method.get("params", []))
    structure = method.get("paramStructure", "either")
    shapes: list[str] = []
    if structure != "by-name":
        shapes.append(f"[{_positional(params)}]")
    if structure != "by-position":
        shapes.append(_named(params))
    optional = "?" if all(not p.get("required", False) for p in params) else ""
    return [
        *_jsdoc(doc),
        f"  {name}(method: {_literal(method['name'])}, params{optional}: {' | '.join(shapes)}, "
        f"options?: {options}): {returns};",
    ]


def _stream_overloads(literal: str, params: Sequence[Mapping[str, Any]], returns: str, doc: str) -> list[str]:
    """The positional ``stream`` overloads: without options, and with ``TrailingStreamOptions`` last.

    The client takes the last argument as the options when it is a plain object whose only keys
    are ``signal`` and ``window`` (``isStreamOptions`` in wsmanager.js). So the overloads stay
    honest: the trailing options type is never empty (``{}`` would be sent as a param), there is
    one options overload per number of params given (options may follow any optional param),
    and a call without options whose last param could be such an object is not declared (the
    client would take that param for options): it must be followed by options, or made with
    ``streamWithOptions``."""
    required = 1 + max((i for i, p in enumerate(params) if p.get("required", False)), default=-1)
    counts = range(required, len(params) + 1)
    safe = [k for k in counts if k == 0 or not _may_look_like_options(params[k - 1].get("schema", {}))]
    out: list[str] = []
    if len(safe) == len(counts):  # one overload, the optional params marked `?`
        out += [*_jsdoc(doc), f"  stream(method: {literal}{_leading(_positional(params))}): {returns};"]
    else:
        for k in safe:
            given = _positional(params[:k], all_required=True)
            out += [*_jsdoc(doc), f"  stream(method: {literal}{_leading(given)}): {returns};"]
    for k in counts:
        given = _positional(params[:k], all_required=True)
        out += [
            *_jsdoc(doc + "\n\nThe last argument is the options (`signal`, `window`)."),
            f"  stream(method: {literal}{_leading(given)}, options: TrailingStreamOptions): {returns};",
        ]
    return out


def _may_look_like_options(schema: Any) -> bool:
    """Whether a param of this JSON Schema could be an object the client takes for stream options:
    a non-empty object whose only keys are ``signal`` and ``window`` (unknown schemas could)."""
    if not isinstance(schema, Mapping) or not schema or "$ref" in schema:
        return True
    if "const" in schema:
        return _options_like(schema["const"])
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return any(_options_like(value) for value in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return any(_may_look_like_options(branch) for branch in schema[key])
    kind = schema.get("type")
    if isinstance(kind, list):
        return any(_may_look_like_options({**schema, "type": k}) for k in kind)
    if kind is None:
        return True
    if kind != "object":
        return False
    if any(name not in ("signal", "window") for name in schema.get("required", [])):
        return False
    properties = schema.get("properties") or {}
    closed = schema.get("additionalProperties") is False
    return not closed or "signal" in properties or "window" in properties


def _options_like(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(key in ("signal", "window") for key in value)


def _upload_method(method: Mapping[str, Any]) -> list[str]:
    literal = _literal(method["name"])
    params = list(method.get("params", []))
    structure = method.get("paramStructure", "either")
    item = ts_type(method["x-upload"].get("schema", {}))
    result = ts_type(method.get("result", {}).get("schema", {}))
    shapes = ([f"[{_positional(params)}]"] if structure != "by-name" else []) + (
        [_named(params)] if structure != "by-position" else []
    )
    optional = "?" if all(not p.get("required", False) for p in params) else ""
    doc = "\n\n".join(part for part in (_method_doc(method), "Reads an upload of `items`.") if part)
    return [
        *_jsdoc(doc),
        f"  upload(method: {literal}, items: Iterable<{item}> | AsyncIterable<{item}>, "
        f"params{optional}: {' | '.join(shapes)}, options?: {{ signal?: AbortSignal }}): Promise<{result}>;",
    ]


_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<parameter>[^>]+)>")


def topic_type(pattern: str) -> str:
    """The names a topic pattern matches, as a TypeScript literal type: ``"tasks"``, or a
    template literal (``user.<int:id>`` is `` `user.${number}` ``)."""
    if not _PARAMETER.search(pattern):
        return _literal(pattern)
    parts: list[str] = []
    last = 0
    for found in _PARAMETER.finditer(pattern):
        parts.append(_template_text(pattern[last : found.start()]))
        parts.append("${number}" if found["converter"] == "int" else "${string}")
        last = found.end()
    parts.append(_template_text(pattern[last:]))
    return "`" + "".join(parts) + "`"


def _template_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("`", "\\`").replace("${", "\\${")


def _subscribe(topic: Mapping[str, Any]) -> list[str]:
    """One ``subscribe`` overload: the pattern's names, its events and their data.

    ``Publication<D, E>`` and ``Subscription<D>`` are the client's (wsmanager.d.ts): the
    callback gets the union of one ``Publication<data, "name">`` per event (so checking
    ``event`` narrows ``data``), the subscription's ``D`` is the union of the data types;
    the untyped ``Client`` stays assignable to the interface (no cast)."""
    events = topic.get("events") or {}
    data = _union([ts_type(schema) for schema in events.values()]) if events else "unknown"
    if events:  # one member per event: narrowing on `event` narrows `data`
        publication = " | ".join(
            f"Publication<{ts_type(schema)}, {_literal(name)}>" for name, schema in events.items()
        )
    else:
        publication = "Publication"
    doc = str(topic.get("description") or topic.get("summary") or "")
    listed = ", ".join(f"`{name}` ({ts_type(schema)})" for name, schema in events.items())
    doc = "\n\n".join(
        part
        for part in (
            f"Topic `{topic['pattern']}`."
            + (" Authorized by the server." if topic.get("authorized") else ""),
            doc,
            f"Events: {listed}." if listed else "",
        )
        if part
    )
    return [
        *_jsdoc(doc),
        f"  subscribe(topic: {topic_type(str(topic['pattern']))}, "
        f"onPublication: (publication: {publication}, subscription: Subscription<{data}>) => void, "
        f"options?: SubscribeOptions): Promise<Subscription<{data}>>;",
    ]


def _on(decl: Mapping[str, Any], *, answers: bool) -> list[str]:
    params = list(decl.get("params", []))
    if not params:
        args = ""
    elif decl.get("paramStructure") == "by-position":
        args = _positional(params)
    else:
        args = f"params: {_named(params)}"
    if answers:
        result = ts_type(decl.get("result", {}).get("schema", {}))
        returns = "unknown" if result == "unknown" else f"{result} | PromiseLike<{result}>"
        kind = "A client method the server calls; what the handler returns is the answer."
    else:
        returns = "unknown"
        kind = "A notification the server sends."
    doc = "\n\n".join(part for part in (_method_doc(decl), kind) if part)
    handler = f"(({args}) => {returns}) | null"
    return [*_jsdoc(doc), f"  on(method: {_literal(decl['name'])}, handler: {handler}): () => void;"]


def _method_doc(method: Mapping[str, Any]) -> str:
    doc = str(method.get("description") or method.get("summary") or "")
    codes = [e for e in method.get("errors", []) if isinstance(e, Mapping) and "code" in e]
    if codes:
        listed = "\n".join(f"- {e['code']}: {e['message']}" for e in codes)
        doc = f"{doc}\n\nApplication errors (RpcError.code):\n{listed}".strip()
    return doc


def _positional(params: Sequence[Mapping[str, Any]], *, all_required: bool = False) -> str:
    """``to: string, text?: string``: an optional param only after the last required one
    (none with ``all_required``)."""
    last_required = max((i for i, p in enumerate(params) if p.get("required", False)), default=-1)
    if all_required:
        last_required = len(params) - 1
    parts = []
    for i, p in enumerate(params):
        label = str(p["name"])
        if not _IDENTIFIER.match(label) or label in _RESERVED:
            label = f"{re.sub(r'[^A-Za-z0-9_$]', '_', label)}_"
            if label[0].isdigit():
                label = f"_{label}"
        mark = "" if i <= last_required else "?"
        parts.append(f"{label}{mark}: {ts_type(p.get('schema', {}))}")
    return ", ".join(parts)


def _leading(positional: str) -> str:
    return f", {positional}" if positional else ""


def _named(params: Sequence[Mapping[str, Any]]) -> str:
    if not params:
        return "Record<string, never>"
    fields = [
        f"{_key(str(p['name']))}{'' if p.get('required', False) else '?'}: {ts_type(p.get('schema', {}))}"
        for p in params
    ]
    return "{ " + "; ".join(fields) + " }"


def ts_type(schema: Any) -> str:
    """The TypeScript type of the JSON values ``schema`` allows (the subset wsmanager writes)."""
    if not isinstance(schema, Mapping) or not schema or "$ref" in schema:
        return "unknown"
    if "const" in schema:
        return _literal(schema["const"])
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        return " | ".join(_literal(v) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return _union([ts_type(s) for s in schema[key]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return _union([ts_type({**schema, "type": k}) for k in kind])
    if kind == "string":
        return "string"
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "null":
        return "null"
    if kind == "array":
        items = schema.get("items")
        if isinstance(items, list):
            return "[" + ", ".join(ts_type(s) for s in items) + "]"
        inner = ts_type(items) if isinstance(items, Mapping) else "unknown"
        return f"({inner})[]" if _top_level_union(inner) else f"{inner}[]"
    if kind == "object":
        return _object(schema)
    return "unknown"


def _object(schema: Mapping[str, Any]) -> str:
    props = schema.get("properties")
    required = set(schema.get("required", []))
    if isinstance(props, Mapping) and props:
        fields = [f"{_key(k)}{'' if k in required else '?'}: {ts_type(v)}" for k, v in props.items()]
        return "{ " + "; ".join(fields) + " }"
    extra = schema.get("additionalProperties")
    return f"{{ [key: string]: {ts_type(extra) if isinstance(extra, Mapping) else 'unknown'} }}"


def _union(types: list[str]) -> str:
    if "unknown" in types:
        return "unknown"
    return " | ".join(dict.fromkeys(types))


def _top_level_union(ts: str) -> bool:
    """Whether ``ts`` is ``A | B`` outside any braces, brackets or parentheses (strings aside)."""
    depth = 0
    quoted = False
    for i, char in enumerate(ts):
        if quoted:
            quoted = char != '"' or ts[i - 1] == "\\"
        elif char == '"':
            quoted = True
        elif char in "{[(<":
            depth += 1
        elif char in "}])>":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
    return False


def _key(name: str) -> str:
    return name if _IDENTIFIER.match(name) else json.dumps(name)


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _jsdoc(text: str, indent: str = "  ") -> list[str]:
    """A JSDoc comment of ``text`` (RST ````code```` becomes Markdown ```code```)."""
    text = text.strip().replace("``", "`").replace("*/", "*\\/")
    if not text:
        return []
    body = [f"{indent} *{' ' + line if line else ''}" for line in text.splitlines()]
    return [f"{indent}/**", *body, f"{indent} */"]
