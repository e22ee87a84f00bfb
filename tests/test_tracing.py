"""``wsmanager.ops.tracing``: spans per handshake, RPC call and invoke, exported by the SDK's
in-memory exporter; the handshake's ``traceparent`` (header or query) is their parent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.handlers import CalcHandler, application
from wsmanager import RemoteError
from wsmanager.ops import tracing
from wsmanager.testing import RpcCommunicator
from wsmanager_client.protocol import INVALID_PARAMS, METHOD_NOT_FOUND

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
CALC = CalcHandler.handler_name


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(tracer_provider=provider)
    yield exporter
    tracing.uninstall()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


async def test_handshake_and_calls_are_children_of_the_traceparent_header(
    spans: InMemorySpanExporter,
) -> None:
    """With a traceparent header, the handshake span and each call span belong to that trace."""
    headers = [(b"traceparent", TRACEPARENT.encode())]
    async with RpcCommunicator(application, "/ws/calc/", headers=headers) as client:
        assert await client.call("add", 2, 3) == 5
    (handshake,) = named(spans, "wsmanager.handshake")
    (call,) = named(spans, f"{CALC}/add")
    for span in (handshake, call):
        assert format(span.context.trace_id, "032x") == TRACE_ID
        assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
        assert span.kind is SpanKind.SERVER
    assert handshake.attributes is not None and handshake.attributes["wsmanager.socket.id"] == client.id
    assert call.attributes == {
        "rpc.system": "jsonrpc",
        "rpc.jsonrpc.version": "2.0",
        "rpc.service": CALC,
        "rpc.method": "add",
    }
    assert call.status.status_code is StatusCode.UNSET
    assert [link.context.span_id for link in call.links] == [handshake.context.span_id]


async def test_traceparent_in_the_query_string_is_the_parent(spans: InMemorySpanExporter) -> None:
    """Browsers cannot set headers on a WebSocket: the query parameter works the same."""
    async with RpcCommunicator(application, f"/ws/calc/?traceparent={TRACEPARENT}") as client:
        await client.call("add", 1, 1)
    (call,) = named(spans, f"{CALC}/add")
    assert format(call.context.trace_id, "032x") == TRACE_ID


async def test_without_traceparent_each_call_is_a_trace_of_its_own(spans: InMemorySpanExporter) -> None:
    """No trace context: the handshake and the calls are roots, in different traces."""
    async with RpcCommunicator(application, "/ws/calc/") as client:
        await client.call("add", 1, 1)
        await client.call("add", 2, 2)
    handshake, *_ = named(spans, "wsmanager.handshake")
    calls = named(spans, f"{CALC}/add")
    assert len(calls) == 2
    assert all(span.parent is None for span in [handshake, *calls])
    assert len({span.context.trace_id for span in [handshake, *calls]}) == 3


async def test_error_answers_carry_the_jsonrpc_error_code(spans: InMemorySpanExporter) -> None:
    """An error answer sets rpc.jsonrpc.error_code and an ERROR status; unknown names are 'unknown'."""
    async with RpcCommunicator(application, "/ws/calc/") as client:
        with pytest.raises(RemoteError):
            await client.call("add", "x", 1)
        with pytest.raises(RemoteError):
            await client.call("no.such.method")
        with pytest.raises(RemoteError):
            await client.call("fail.rpc")
    (bad_params, rpc_error) = named(spans, f"{CALC}/add") + named(spans, f"{CALC}/fail.rpc")
    (unknown,) = named(spans, f"{CALC}/unknown")
    assert bad_params.attributes is not None
    assert bad_params.attributes["rpc.jsonrpc.error_code"] == INVALID_PARAMS
    assert rpc_error.attributes is not None and rpc_error.attributes["rpc.jsonrpc.error_code"] == 4000
    assert unknown.attributes is not None
    assert unknown.attributes["rpc.jsonrpc.error_code"] == METHOD_NOT_FOUND
    assert unknown.attributes["rpc.method"] == "no.such.method"
    assert {s.status.status_code for s in (bad_params, rpc_error, unknown)} == {StatusCode.ERROR}


async def test_an_invoke_inside_a_call_is_a_client_span_under_the_call(spans: InMemorySpanExporter) -> None:
    """ask_client invokes ``double`` on the caller: a CLIENT span, child of the call's span."""
    async with RpcCommunicator(application, "/ws/calc/") as client:
        await client.send_json_to({"jsonrpc": "2.0", "method": "ask_client", "params": [21], "id": 1})
        request = await client.receive_json_from()
        assert request["method"] == "double"
        await client.send_json_to({"jsonrpc": "2.0", "result": 42, "id": request["id"]})
        assert (await client.receive_json_from())["result"] == 42
    (call,) = named(spans, f"{CALC}/ask_client")
    (invoke,) = named(spans, f"{CALC}/double invoke")
    assert invoke.kind is SpanKind.CLIENT
    assert invoke.parent is not None and invoke.parent.span_id == call.context.span_id
    assert invoke.attributes is not None and invoke.attributes["rpc.method"] == "double"


async def test_a_refused_handshake_is_an_error_span(spans: InMemorySpanExporter) -> None:
    """A refused socket's handshake span ends with an ERROR status."""
    client = RpcCommunicator(application, "/ws/refuse/false/")
    accepted, _ = await client.connect()
    assert not accepted
    (handshake,) = named(spans, "wsmanager.handshake")
    assert handshake.status.status_code is StatusCode.ERROR


async def test_uninstalled_makes_no_span(spans: InMemorySpanExporter) -> None:
    tracing.uninstall()
    async with RpcCommunicator(application, "/ws/calc/") as client:
        await client.call("add", 1, 1)
    assert spans.get_finished_spans() == ()
