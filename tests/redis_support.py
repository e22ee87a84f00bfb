"""Redis for tests: the server's URL, or a skip (or a failure) when it is down.

Use the ``redis_url`` fixture in any test that needs Redis: make it visible in
the test module with ``redis_url = redis_support.redis_url`` (an assignment,
which ruff does not report as an unused import) and mark the tests
``@pytest.mark.redis``.

* ``WSMANAGER_TEST_REDIS_URL`` names the server (default
  ``redis://127.0.0.1:6379/15``, a database the demo does not use).
* When the server does not answer, the tests are skipped with a one-line
  reason, unless ``WSMANAGER_REQUIRE_REDIS=1``: then they fail, so that CI
  cannot pass by skipping them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache

import pytest
import redis
from django.test import override_settings

from wsmanager.registry import get_registry, reset_registry

__all__ = ["DEFAULT_REDIS_URL", "redis_problem", "redis_registry", "redis_url"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def _url() -> str:
    return os.environ.get("WSMANAGER_TEST_REDIS_URL") or DEFAULT_REDIS_URL


@cache
def redis_problem(url: str) -> str | None:
    """Why the Redis server at ``url`` cannot be used, or None when it answers PING."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"Redis not reachable at {url}: {exc}"
    finally:
        client.close()
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of a reachable Redis; skips (or fails with WSMANAGER_REQUIRE_REDIS=1) if down."""
    url = _url()
    problem = redis_problem(url)
    if problem is not None:
        if os.environ.get("WSMANAGER_REQUIRE_REDIS") == "1":
            pytest.fail(f"{problem} (WSMANAGER_REQUIRE_REDIS=1)", pytrace=False)
        pytest.skip(problem)
    return url


@asynccontextmanager
async def redis_registry(url: str, *, node_ttl: float = 0.5, heartbeat: float = 0.2) -> AsyncIterator[None]:
    """Run wsmanager on the Redis registry under a fresh key prefix, cleared afterwards."""
    options = {"url": url, "prefix": f"wsmtest-{secrets.token_hex(6)}", "node_ttl": node_ttl}
    conf = {
        "REGISTRY": {"BACKEND": "wsmanager.registry.redis.RedisRegistry", "OPTIONS": options},
        "HEARTBEAT_INTERVAL": heartbeat,
    }
    with override_settings(WSMANAGER=conf):
        reset_registry()
        try:
            yield
        finally:
            registry = get_registry()
            await registry.clear()
            await registry.close()
            reset_registry()
