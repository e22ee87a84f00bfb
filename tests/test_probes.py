"""``wsmanager.ops.probes`` and ``wsmanager.ops._health``: liveness, readiness and its reasons."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import RequestFactory

from wsmanager.exceptions import RegistryUnavailable
from wsmanager.ops import _health as health
from wsmanager.ops import probes


@pytest.fixture(autouse=True)
def _serving() -> Iterator[None]:
    health.set_draining(False)
    yield
    health.set_draining(False)


def body(response: Any) -> tuple[int, dict[str, Any]]:
    return response.status_code, json.loads(response.content)


class Registry:
    """A registry whose ``get`` fails or hangs."""

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang

    async def get(self, handler: str, socket_id: str) -> None:
        if self.hang:
            await asyncio.sleep(3600)
        raise RegistryUnavailable("Redis registry at redis://10.0.0.9:6379 unavailable (get)")


async def test_ready_with_the_in_memory_registry_and_layer() -> None:
    response = await probes.readiness(RequestFactory().get("/readyz"))
    assert body(response) == (
        200,
        {"ready": True, "checks": {"draining": False, "registry": "ok", "channel_layer": "ok"}},
    )


async def test_draining_is_not_ready_but_healthy() -> None:
    health.set_draining()
    assert health.is_draining()
    status, answer = body(await probes.readiness(RequestFactory().get("/readyz")))
    assert (status, answer["reason"], answer["checks"]["draining"]) == (503, "draining", True)
    assert body(await probes.health(RequestFactory().get("/healthz"))) == (200, {"status": "ok"})
    health.set_draining(False)
    assert (await probes.readiness(RequestFactory().get("/readyz"))).status_code == 200


async def test_an_unreachable_registry_is_not_ready_and_its_address_is_not_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(probes, "get_registry", lambda: Registry())
    status, answer = body(await probes.readiness(RequestFactory().get("/readyz")))
    assert (status, answer["reason"]) == (503, "registry unavailable")
    assert answer["checks"]["registry"] == "unavailable"
    assert "10.0.0.9" not in json.dumps(answer)


async def test_a_registry_that_does_not_answer_in_time_is_not_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probes, "get_registry", lambda: Registry(hang=True))
    status, answer = body(await probes.readiness(RequestFactory().get("/readyz"), timeout=0.05))
    assert (status, answer["reason"]) == (503, "registry timeout")


async def test_a_layer_of_unknown_kind_is_not_checked_and_does_not_make_it_unready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(probes, "get_channel_layer", lambda alias: object())
    reason, checks = await probes.readiness_checks()
    assert (reason, checks["channel_layer"]) == (None, "not checked")
