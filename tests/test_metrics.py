"""``wsmanager.ops.metrics``: names, labels and values, on a registry of the test's own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from channels.testing import WebsocketCommunicator
from prometheus_client import CollectorRegistry

from tests.handlers import CalcHandler, SmallEchoHandler, application
from wsmanager import RemoteError
from wsmanager.observe import Count
from wsmanager.observe import _counters as counters
from wsmanager.observe import _hub as observe
from wsmanager.ops import metrics
from wsmanager.testing import RpcCommunicator

CALC = CalcHandler.handler_name


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    """A MetricsObserver on a fresh registry, installed alone (the demo's is set aside)."""
    before = observe.observers()
    for o in before:
        observe.remove(o)
    reg = CollectorRegistry()
    observer = metrics.MetricsObserver(reg)
    observe.add(observer)
    yield reg
    observe.remove(observer)
    for o in before:
        observe.add(o)


def sample(reg: CollectorRegistry, name: str, **labels: str) -> float:
    return reg.get_sample_value(name, labels) or 0.0


async def test_calls_are_timed_by_exposed_method_and_outcome(registry: CollectorRegistry) -> None:
    async with RpcCommunicator(application, "/ws/calc/") as client:
        assert await client.call("add", 1, 2) == 3
        assert await client.call("math.negate", 2) == -2
        with pytest.raises(RemoteError):
            await client.call("add", "x", 2)
        for junk in ("no.such", "also.no", "x" * 500):
            with pytest.raises(RemoteError):
                await client.call(junk)
        assert await client.call("rpc.ping") == "pong"  # a lone ping is answered at once, not timed
        await client.send_json_to([{"jsonrpc": "2.0", "method": "rpc.ping", "id": 99}])  # in a batch: timed
        assert (await client.receive_json_from())[0]["result"] == "pong"
    count = "wsmanager_rpc_duration_seconds_count"
    assert sample(registry, count, handler=CALC, method="add", outcome="ok") == 1
    assert sample(registry, count, handler=CALC, method="math.negate", outcome="ok") == 1
    assert sample(registry, count, handler=CALC, method="add", outcome="error") == 1
    assert sample(registry, count, handler=CALC, method="unknown", outcome="error") == 3
    assert sample(registry, count, handler=CALC, method="rpc.ping", outcome="ok") == 1
    methods = {s.labels.get("method") for m in registry.collect() for s in m.samples}
    assert methods - {None} == {"add", "math.negate", "unknown", "rpc.ping"}


async def test_connections_frames_and_close_codes(registry: CollectorRegistry) -> None:
    async with RpcCommunicator(application, "/ws/calc/") as client:
        assert sample(registry, "wsmanager_connections", handler=CALC) == 1
        await client.call("add", 1, 1)
    await asyncio.sleep(0)
    assert sample(registry, "wsmanager_connections", handler=CALC) == 0
    assert sample(registry, "wsmanager_connections_opened_total", handler=CALC) == 1
    assert sample(registry, "wsmanager_connections_closed_total", handler=CALC, code="1000") == 1
    assert sample(registry, "wsmanager_messages_received_total", handler=CALC) == 1
    assert sample(registry, "wsmanager_messages_sent_total", handler=CALC) == 2  # rpc.connected, the answer

    small = SmallEchoHandler.handler_name
    comm = WebsocketCommunicator(application, "/ws/small/")
    assert (await comm.connect())[0]
    await comm.send_to(text_data="x" * 5000)
    assert (await comm.receive_output())["type"] == "websocket.close"
    await comm.disconnect()
    assert sample(registry, "wsmanager_connections_closed_total", handler=small, code="1009") == 1
    assert sample(registry, "wsmanager_dropped_total", reason="refused_too_big") == 1


async def test_invokes_are_timed_by_outcome(registry: CollectorRegistry) -> None:
    async with RpcCommunicator(application, "/ws/calc/") as client:
        await client.send_json_to({"jsonrpc": "2.0", "method": "ask_client", "params": [2], "id": 1})
        request = await client.receive_json_from()
        refusal = {"jsonrpc": "2.0", "error": {"code": 7, "message": "no"}, "id": request["id"]}
        await client.send_json_to(refusal)
        await client.receive_json_from()
    count = "wsmanager_invoke_duration_seconds_count"
    assert sample(registry, count, handler=CALC, outcome="error") == 1
    assert sample(registry, count, handler=CALC, outcome="ok") == 0


def test_every_drop_counter_is_a_reason_and_others_are_not(registry: CollectorRegistry) -> None:
    counters.bump(Count.DROPPED_SLOW_CLIENT, 3)
    counters.bump(Count.DELIVERED, 5)
    reasons = {
        s.labels["reason"]: s.value
        for m in registry.collect()
        if m.name == "wsmanager_dropped"
        for s in m.samples
    }
    assert set(reasons) == set(metrics.DROP_REASONS)
    assert {"delivered", "forwarded", "restored"}.isdisjoint(reasons)
    assert reasons["dropped_slow_client"] == 3
    assert len(metrics.DROP_REASONS) == len(Count) - len(counters.EVENTS)


def test_registry_errors_by_operation(registry: CollectorRegistry) -> None:
    assert observe.hub is not None
    observe.hub.registry_error("add")
    assert sample(registry, "wsmanager_registry_errors_total", operation="add") == 1


def test_install_is_idempotent_and_the_view_serves_the_default_registry() -> None:
    from django.test import RequestFactory

    first = metrics.install()
    assert metrics.install() is first
    response = metrics.metrics_view(RequestFactory().get("/metrics"))
    assert response["Content-Type"].startswith("text/plain")
    assert b"# TYPE wsmanager_connections gauge" in response.content


def test_multiprocess_mode_sums_the_workers(tmp_path: os.PathLike[str]) -> None:
    """Under PROMETHEUS_MULTIPROC_DIR two processes' sockets add up in the view of either."""
    script = textwrap.dedent(
        """
        import django, sys
        from django.conf import settings
        settings.configure(INSTALLED_APPS=["wsmanager"])
        django.setup()
        from wsmanager.ops import metrics
        observer = metrics.install()
        for _ in range(int(sys.argv[1])):
            observer.connection_opened("h")
        if sys.argv[2] == "show":
            from django.test import RequestFactory
            print(metrics.metrics_view(RequestFactory().get("/metrics")).content.decode())
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", script, "2", "quiet"], env=env, check=True)
    shown = subprocess.run(
        [sys.executable, "-c", script, "3", "show"], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert 'wsmanager_connections_opened_total{handler="h"} 5.0' in shown
    assert "wsmanager_dropped_total" in shown


def test_multiprocess_mode_sums_the_drops_and_frames_of_the_workers(tmp_path: os.PathLike[str]) -> None:
    """Under PROMETHEUS_MULTIPROC_DIR each worker's drop counters reach the shared files on its
    heartbeat (the scraped worker's own just before it answers): the view of either sums them.
    A worker's drops since its last beat are not there yet."""
    script = textwrap.dedent(
        """
        import django, sys
        from django.conf import settings
        settings.configure(INSTALLED_APPS=["wsmanager"])
        django.setup()
        from wsmanager.observe import _counters as counters
        from wsmanager.ops import metrics
        from wsmanager.observe import _hub as observe
        from wsmanager.observe import Count
        observer = metrics.install()
        slow, beats, late = (int(n) for n in sys.argv[1:4])
        for _ in range(beats):
            counters.bump(Count.DROPPED_SLOW_CLIENT, slow)
            observer.frame_sent("h")
            observe.hub.heartbeat()
        counters.bump(Count.RATE_LIMITED, late)  # after the last beat
        if sys.argv[4] == "show":
            from django.test import RequestFactory
            print(metrics.metrics_view(RequestFactory().get("/metrics")).content.decode())
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", script, "2", "3", "4", "quiet"], env=env, check=True)
    shown = subprocess.run(
        [sys.executable, "-c", script, "5", "1", "1", "show"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert 'wsmanager_dropped_total{reason="dropped_slow_client"} 11.0' in shown  # 2 x 3 + 5
    assert 'wsmanager_dropped_total{reason="rate_limited"} 1.0' in shown  # the scraped worker's only
    assert 'wsmanager_messages_sent_total{handler="h"} 4.0' in shown  # frames are tallies too: 3 + 1
    assert (
        shown.count("# TYPE wsmanager_dropped_total counter")
        + shown.count("# TYPE wsmanager_dropped counter")
        == 1
    )


def test_a_drops_counter_counts_only_what_was_gained_since_its_last_sync() -> None:
    drops = metrics.DropsCounter(CollectorRegistry())
    counters.bump(Count.DROPPED_OVERFLOW, 2)
    drops.sync()
    drops.sync()
    counters.bump(Count.DROPPED_OVERFLOW, 3)
    drops.sync()
    counters.reset()  # a counter going back counts from zero again
    counters.bump(Count.DROPPED_OVERFLOW, 1)
    drops.sync()
    assert drops.counter.labels("dropped_overflow")._value.get() == 6


@pytest.mark.parametrize(
    ("code", "label"),
    [
        *[(code, str(code)) for code in (1000, 1006, 1015, 4403, 4409, 4429)],
        *[(code, "other") for code in (1004, 1016, 3000, 4001, 4999, 65535)],
    ],
)
def test_close_codes_outside_the_fixed_set_are_labelled_other(code: int, label: str) -> None:
    assert metrics.close_code_label(code) == label
