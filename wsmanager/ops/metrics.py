"""Prometheus metrics of this process (the ``wsmanager[metrics]`` extra).

Call :func:`install` once per process, before sockets open (an
``AppConfig.ready``, or the ASGI module; a socket opened before it is not in
the gauge, and its close would take the gauge below the truth): it
registers the metrics in prometheus-client's default registry, so an
existing ``/metrics`` endpoint (django-prometheus, your own) includes them,
and installs an observer (:mod:`wsmanager.observe._hub`) that updates them.
:func:`metrics_view` is a Django view that serves them. docs/operations.md
lists every metric, with queries and alerts.

The names and labels are a contract (dashboards depend on them):

* ``wsmanager_connections{handler}``: open sockets of the handler in this process;
* ``wsmanager_connections_opened_total{handler}``,
  ``wsmanager_connections_closed_total{handler,code}``: ``code`` is one of
  :data:`LABELLED_CLOSE_CODES` (RFC 6455's codes and wsmanager's own), any
  other code ``other`` (a client chooses its close code: it must not choose
  the number of series);
* ``wsmanager_messages_received_total{handler}`` (frames in),
  ``wsmanager_messages_sent_total{handler}`` (frames written to sockets):
  :class:`Tally` counts, one dict increment per frame, read at scrape time;
* ``wsmanager_dropped_total{reason}``: one reason per drop or refusal counter
  of :mod:`wsmanager.observe._counters` (read at scrape time: no cost per drop);
* ``wsmanager_rpc_duration_seconds{handler,method,outcome}``: ``method`` is an
  exposed name (or ``rpc.ping``), anything else ``unknown``; ``outcome`` is
  ``ok`` or ``error``;
* ``wsmanager_invoke_duration_seconds{handler,outcome}`` (server-to-client calls);
* ``wsmanager_registry_errors_total{operation}``.

No label holds a user, a group, a socket id or any other value a client
chooses, so the number of series is bounded by handlers, exposed methods and
the fixed set of close codes. Guarantees: counts are
this process's since it started (each process serves its own figures;
Prometheus sums them). With prometheus-client's multi-process mode
(``PROMETHEUS_MULTIPROC_DIR`` set before prometheus-client is imported, e.g.
under gunicorn), :func:`metrics_view`, or any exposition that reads the
directory with ``MultiProcessCollector``, serves the sum over the workers,
drops and frames included: there, ``wsmanager_dropped_total`` and the two
message counters are real counters (:class:`DropsCounter`, :class:`Tally`)
that each worker brings up to its own counts on every heartbeat of its node
(:meth:`MetricsObserver.heartbeat`, twice per ``HEARTBEAT_INTERVAL``) and
before it answers a scrape itself. Non-guarantees: a call whose result
cannot be encoded as JSON is timed as ``ok`` (the client gets -32603); in
multi-process mode a worker's latest drops and frames show up to half a
heartbeat interval late, and those of a worker that holds no socket (so has
no heartbeat) only once it answers a scrape or opens a socket.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from ..connection._lifecycle import CloseCode
from ..observe import _counters as counters
from ..observe import _hub as observe
from ..observe._counters import EVENTS, Count

__all__ = [
    "DROP_REASONS",
    "LABELLED_CLOSE_CODES",
    "DropsCollector",
    "DropsCounter",
    "MetricsObserver",
    "Tally",
    "install",
    "metrics_view",
    "uninstall",
]

#: The counters that are drops or refusals: the ``reason`` label's values.
DROP_REASONS: tuple[str, ...] = tuple(str(c) for c in Count if c not in EVENTS)

#: The close codes that are a ``code`` label of their own: those RFC 6455 defines
#: (1000-1015 but the reserved 1004) and :class:`~wsmanager.connection._lifecycle.CloseCode`'s.
LABELLED_CLOSE_CODES: frozenset[int] = frozenset(range(1000, 1016)) - {1004} | {int(c) for c in CloseCode}


def close_code_label(code: int) -> str:
    """The ``code`` label of a close: the code itself when it is in the fixed set, else ``other``."""
    return str(code) if code in LABELLED_CLOSE_CODES else "other"


#: Histogram buckets in seconds: from a local call (sub-millisecond) to the invoke timeout.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

K = TypeVar("K")


class _Children(dict[K, Any], Generic[K]):
    """Labelled children of one metric, looked up once per label set."""

    def __init__(self, labels: Callable[[K], Any]) -> None:
        super().__init__()
        self._labels = labels

    def __missing__(self, key: K) -> Any:
        child = self[key] = self._labels(key)
        return child


DROPS_DOC = "Frames, calls and handshakes dropped or refused, by reason."


class DropsCollector(Collector):
    """``wsmanager_dropped_total{reason}``, read from :func:`wsmanager.stats` at scrape time."""

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("wsmanager_dropped", DROPS_DOC, labels=["reason"])
        stats = counters.stats()
        for reason in DROP_REASONS:
            family.add_metric([reason], stats.get(reason, 0))
        yield family


class Tally(Collector):
    """A counter family with one label, kept as plain ints per label value: the hot path does
    ``tally.counts[value] += 1`` (no lock, no prometheus-client call).

    Exported at scrape time by :meth:`collect` (registered in ``registry``); in
    multi-process mode instead as a prometheus-client counter, brought up to the
    tallies (what each gained since the last time) by :meth:`sync`, which the
    heartbeat and the scrape call.
    """

    def __init__(
        self, name: str, doc: str, label: str, registry: CollectorRegistry, multiprocess: bool
    ) -> None:
        self.name, self.doc, self.label = name, doc, label
        self.counts: defaultdict[str, int] = defaultdict(int)
        self.counter: Counter | None = None
        self._synced: dict[str, int] = {}
        self._lock = threading.Lock()
        if multiprocess:
            self.counter = Counter(name, doc, [label], registry=registry)
        else:
            registry.register(self)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.doc, labels=[self.label])
        for value, count in list(self.counts.items()):  # list(): one step, whatever the loop does meanwhile
            family.add_metric([value], count)
        yield family

    def sync(self) -> None:
        if self.counter is None:
            return
        with self._lock:
            for value, count in list(self.counts.items()):
                gained = count - self._synced.get(value, 0)
                if gained:
                    self.counter.labels(value).inc(gained)
                    self._synced[value] = count


class DropsCounter:
    """``wsmanager_dropped_total{reason}`` in multi-process mode: a prometheus-client counter,
    so that its value goes to this process's file and ``MultiProcessCollector`` sums the workers.

    :meth:`sync` adds what each counter of :mod:`wsmanager.observe._counters` gained since
    the last sync (a counter that went back, after ``counters.reset()``, counts
    from zero again). It costs nothing per drop: the heartbeat and the scrape call it.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counter = Counter("wsmanager_dropped", DROPS_DOC, ["reason"], registry=registry)
        self._children = {reason: self.counter.labels(reason) for reason in DROP_REASONS}
        self._synced: dict[str, int] = {}
        self._lock = threading.Lock()  # the scrape runs in a view's thread, the heartbeat in the loop's

    def sync(self) -> None:
        with self._lock:
            stats = counters.stats()
            for reason, child in self._children.items():
                now, before = stats.get(reason, 0), self._synced.get(reason, 0)
                gained = now - before if now >= before else now
                if gained:
                    child.inc(gained)
                self._synced[reason] = now


class MetricsObserver(observe.Observer):
    """Updates the metrics of the module docstring from the core's events."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def histogram(name: str, doc: str, labels: list[str]) -> Histogram:
            return Histogram(name, doc, labels, registry=registry, buckets=BUCKETS)

        self.connections = Gauge(
            "wsmanager_connections",
            "Open sockets of the handler in this process.",
            ["handler"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.opened = counter("wsmanager_connections_opened", "Handshakes accepted.", ["handler"])
        self.closed = counter(
            "wsmanager_connections_closed", "Open sockets that closed, by close code.", ["handler", "code"]
        )
        multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # The two per-frame metrics are tallies: a dict increment per frame.
        self.received = Tally(
            "wsmanager_messages_received", "Frames received from clients.", "handler", registry, multiprocess
        )
        self.sent = Tally(
            "wsmanager_messages_sent", "Frames written to sockets.", "handler", registry, multiprocess
        )
        self.rpc = histogram(
            "wsmanager_rpc_duration_seconds",
            "Client-to-server JSON-RPC calls: time from start to answer.",
            ["handler", "method", "outcome"],
        )
        self.invoke = histogram(
            "wsmanager_invoke_duration_seconds",
            "Server-to-client calls (invoke): time until the answer, error or timeout.",
            ["handler", "outcome"],
        )
        self.registry_errors = counter(
            "wsmanager_registry_errors", "Registry operations that failed (store unreachable).", ["operation"]
        )
        self.drops: DropsCollector | DropsCounter
        if multiprocess:
            self.drops = DropsCounter(registry)
        else:
            self.drops = DropsCollector()
            registry.register(self.drops)
        self._connections: _Children[str] = _Children(self.connections.labels)
        self._opened: _Children[str] = _Children(self.opened.labels)
        self._closed: _Children[tuple[str, str]] = _Children(lambda k: self.closed.labels(*k))
        self._received = self.received.counts
        self._sent = self.sent.counts
        self._rpc: _Children[tuple[str, str, str]] = _Children(lambda k: self.rpc.labels(*k))
        self._invoke: _Children[tuple[str, str]] = _Children(lambda k: self.invoke.labels(*k))

    def heartbeat(self) -> None:
        """In multi-process mode, bring the frame and drop counters up to this process's tallies."""
        if isinstance(self.drops, DropsCounter):
            self.drops.sync()
            self.received.sync()
            self.sent.sync()

    def connection_opened(self, handler: str) -> None:
        self._opened[handler].inc()
        self._connections[handler].inc()

    def connection_closed(self, handler: str, code: int) -> None:
        self._closed[handler, close_code_label(code)].inc()
        self._connections[handler].dec()

    def frame_received(self, handler: str) -> None:
        self._received[handler] += 1

    def frame_sent(self, handler: str) -> None:
        self._sent[handler] += 1

    def registry_error(self, operation: str) -> None:
        self.registry_errors.labels(operation).inc()

    def rpc_finished(
        self, sock: observe.Socket, method: str, token: Any, seconds: float, code: int | None
    ) -> None:
        exposed = method in getattr(sock, "rpc_methods", ()) or method == "rpc.ping"
        key = (sock.handler_name, method if exposed else "unknown", "ok" if code is None else "error")
        self._rpc[key].observe(seconds)

    def invoke_finished(
        self, sock: observe.Socket, method: str, token: Any, seconds: float, error: BaseException | None
    ) -> None:
        self._invoke[sock.handler_name, "ok" if error is None else "error"].observe(seconds)


_installed: MetricsObserver | None = None


def install(registry: CollectorRegistry = REGISTRY) -> MetricsObserver:
    """Register the metrics (once per process) and start updating them.

    Later calls return the same observer (and reinstall it after
    :func:`uninstall`); ``registry`` only counts on the first call.
    """
    global _installed
    if _installed is None:
        _installed = MetricsObserver(registry)
    observe.add(_installed)
    return _installed


def uninstall() -> None:
    """Stop updating the metrics (they stay registered, with their last values)."""
    if _installed is not None:
        observe.remove(_installed)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The text exposition of the default registry (or of every worker, in multi-process mode).

    No access control of its own: mount it behind yours (the demo's is
    ``demo_chat.access``), or on a port only Prometheus reaches.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        if _installed is not None:  # this worker's latest drops and frames, before the files are read
            _installed.heartbeat()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
