"""The registry contract, run against the in-memory backend."""

from __future__ import annotations

import pytest

from wsmanager.registry.memory import InMemoryRegistry

from .registry_contract import RegistryContract


@pytest.fixture
def registry() -> InMemoryRegistry:
    """A fresh, empty in-memory registry."""
    return InMemoryRegistry()


class TestInMemoryRegistry(RegistryContract):
    """Every contract test, against :class:`InMemoryRegistry`."""
