"""Health and readiness against a real daphne on a real Redis that the test stops and starts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.e2e.client import cluster_env, http
from tests.e2e.test_redis_outage import RedisServer
from tests.e2e.test_redis_outage import redis_server as redis_server  # the fixture
from tests.servers import DaphneProcess

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


@pytest.fixture
def server(redis_server: RedisServer) -> Iterator[DaphneProcess]:
    proc = DaphneProcess(env=cluster_env(redis_server.url, WSMANAGER_HEARTBEAT="0.5"))
    proc.start()
    yield proc
    proc.stop()


async def until_status(server: DaphneProcess, path: str, status: int) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        response = await http("GET", server, path)
        if response.status_code == status:
            body: dict[str, object] = response.json()
            return body
        assert time.monotonic() < deadline, f"{path} still answers {response.status_code}: {response.text}"
        await asyncio.sleep(0.2)


async def test_readiness_follows_redis_and_health_stays_200(
    server: DaphneProcess, redis_server: RedisServer
) -> None:
    ready = await http("GET", server, "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "ready": True,
        "checks": {"draining": False, "registry": "ok", "channel_layer": "ok"},
    }

    redis_server.kill()
    down = await until_status(server, "/readyz", 503)
    assert down["ready"] is False
    assert down["reason"] in ("registry unavailable", "registry timeout")
    assert down["checks"] == {
        "draining": False,
        "registry": down["reason"].split()[1],  # type: ignore[union-attr]
        "channel_layer": down["checks"]["channel_layer"],  # type: ignore[index]
    }
    assert down["checks"]["channel_layer"] in ("unavailable", "timeout")  # type: ignore[index]
    assert "127.0.0.1" not in str(down) and str(redis_server.port) not in str(down)
    health = await http("GET", server, "/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})

    redis_server.start()  # the same port; the fixture stops it at the end
    back = await until_status(server, "/readyz", 200)
    assert back["ready"] is True
    metrics = await http("GET", server, "/metrics")
    assert 'wsmanager_registry_errors_total{operation="get"}' in metrics.text
