"""OpenTelemetry spans (the ``wsmanager[tracing]`` extra: opentelemetry-api).

Call :func:`install` once per process, after the OpenTelemetry SDK is set
up (or pass ``tracer_provider``). Nothing of OpenTelemetry is imported
until this module is, and without :func:`install` no span is made.

Spans:

* ``wsmanager.handshake`` (kind SERVER) per handshake, from admission to
  accepted or refused; status ERROR when refused; attributes
  ``wsmanager.handlers._handler``, ``url.path`` and, once known, ``wsmanager.socket.id``.
* ``<handler>/<method>`` (kind SERVER) per client-to-server call, with
  ``rpc.system = "jsonrpc"``, ``rpc.service`` (the handler), ``rpc.method``
  and, for an error answer, ``rpc.jsonrpc.error_code`` and status ERROR.
  ``<method>`` in the span name is an exposed name or ``unknown`` (a client
  cannot make span names up); ``rpc.method`` holds what was asked for, cut
  to 128 characters. The span is current while the method runs: spans the
  method makes (database, HTTP) are its children.
* ``<handler>/<method> invoke`` (kind CLIENT) per server-to-client call, with
  the same ``rpc.*`` attributes (the client's error code for a
  :class:`~wsmanager.exceptions.RemoteError`; a timeout or a closed socket
  is an ERROR status without a code).

The parent: the trace context the handshake carried, in a ``traceparent``
(and ``tracestate``) header or, for browsers, which cannot set headers on a
WebSocket, in query parameters of the same names. It is the parent of the
handshake span **and** of every call and invoke span of that socket, so they
all join the client's trace. Without it, each call is a trace of its own
(an hour-long socket does not make an hour-long trace); call spans always
carry a link to their socket's handshake span. The propagator is
OpenTelemetry's global one (W3C trace context by default).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode

from ..exceptions import RemoteError
from ..observe import _hub as observe

__all__ = ["TracingObserver", "carrier_of", "install", "uninstall"]

_CARRIED = ("traceparent", "tracestate")


def carrier_of(scope: Mapping[str, Any]) -> dict[str, str]:
    """The trace headers of a handshake: its ``traceparent``/``tracestate`` headers, else
    query parameters of those names."""
    carrier: dict[str, str] = {}
    for name, value in scope.get("headers") or ():
        key = name.decode("latin-1").lower()
        if key in _CARRIED:
            carrier[key] = value.decode("latin-1")
    if "traceparent" not in carrier:
        query = scope.get("query_string") or b""
        for key, value in parse_qsl(query.decode("latin-1")):
            if key in _CARRIED:
                carrier.setdefault(key, value)
    return carrier


def _method_name(sock: observe.Socket, method: str) -> str:
    exposed = method in getattr(sock, "rpc_methods", ()) or method == "rpc.ping"
    return method if exposed else "unknown"


class TracingObserver(observe.Observer):
    """Makes the spans of the module docstring."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        #: Per socket: the context its handshake carried, and its handshake span.
        self._sockets: weakref.WeakKeyDictionary[Any, tuple[Context, SpanContext]] = (
            weakref.WeakKeyDictionary()
        )

    def _parent(self, sock: observe.Socket) -> tuple[Context, list[Link]]:
        """The current span's context if there is one (an invoke inside a call), else the socket's."""
        known = self._sockets.get(sock)
        links = [] if known is None else [Link(known[1])]
        if trace.get_current_span().get_span_context().is_valid:
            return otel_context.get_current(), links
        if known is None:
            return propagate.extract(carrier_of(sock.scope)), links
        return known[0], links

    def handshake_started(self, sock: observe.Socket) -> Any:
        parent = propagate.extract(carrier_of(sock.scope))
        attributes = {"wsmanager.handler": sock.handler_name, "url.path": str(sock.scope.get("path", ""))}
        span = self.tracer.start_span(
            "wsmanager.handshake", context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        return span, parent

    def handshake_finished(self, sock: observe.Socket, token: Any, accepted: bool) -> None:
        span, parent = token
        if sock.id:
            span.set_attribute("wsmanager.socket.id", sock.id)
        if not accepted:
            span.set_status(Status(StatusCode.ERROR, "refused"))
        span.end()
        self._sockets[sock] = (parent, span.get_span_context())

    def _start(self, sock: observe.Socket, method: str, kind: SpanKind, suffix: str) -> Any:
        parent, links = self._parent(sock)
        attributes = {
            "rpc.system": "jsonrpc",
            "rpc.jsonrpc.version": "2.0",
            "rpc.service": sock.handler_name,
            "rpc.method": method[:128],
        }
        # A client's call names only exposed methods; an invoke's name is the server's own.
        shown = _method_name(sock, method) if kind is SpanKind.SERVER else method[:128]
        name = f"{sock.handler_name}/{shown}{suffix}"
        span = self.tracer.start_span(name, context=parent, kind=kind, attributes=attributes, links=links)
        return span, otel_context.attach(trace.set_span_in_context(span))

    def rpc_started(self, sock: observe.Socket, method: str) -> Any:
        return self._start(sock, method, SpanKind.SERVER, "")

    def rpc_finished(
        self, sock: observe.Socket, method: str, token: Any, seconds: float, code: int | None
    ) -> None:
        span, attached = token
        if code is not None:
            if code != observe.CANCELLED:
                span.set_attribute("rpc.jsonrpc.error_code", code)
            span.set_status(Status(StatusCode.ERROR, "cancelled" if code == observe.CANCELLED else None))
        otel_context.detach(attached)
        span.end()

    def invoke_started(self, sock: observe.Socket, method: str) -> Any:
        return self._start(sock, method, SpanKind.CLIENT, " invoke")

    def invoke_finished(
        self, sock: observe.Socket, method: str, token: Any, seconds: float, error: BaseException | None
    ) -> None:
        span, attached = token
        if isinstance(error, RemoteError):
            span.set_attribute("rpc.jsonrpc.error_code", error.code)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        otel_context.detach(attached)
        span.end()


_installed: TracingObserver | None = None


def install(tracer_provider: trace.TracerProvider | None = None) -> TracingObserver:
    """Start making spans, with ``tracer_provider`` (default: the global one).

    Calling it again replaces the observer (a new provider takes effect).
    """
    global _installed
    uninstall()
    _installed = TracingObserver(trace.get_tracer("wsmanager", tracer_provider=tracer_provider))
    observe.add(_installed)
    return _installed


def uninstall() -> None:
    """Stop making spans."""
    if _installed is not None:
        observe.remove(_installed)
