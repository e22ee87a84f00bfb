"""The registry contract, run against the in-memory backend."""

from __future__ import annotations

import pytest

from wsmanager.registry.memory import InMemoryRegistry

from .recovery_contract import RecoveryContract
from .registry_contract import RegistryContract


@pytest.fixture
def registry() -> InMemoryRegistry:
    """A fresh, empty in-memory registry."""
    return InMemoryRegistry()


class TestInMemoryRegistry(RegistryContract, RecoveryContract):
    """Every contract test, against :class:`InMemoryRegistry`."""
