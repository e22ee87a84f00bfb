"""``wsmanager._state``: one reset forgets every piece of process-wide state, and every module
that keeps some either registers how to forget it or is listed as keeping it on purpose."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from wsmanager import _db, _state, testing
from wsmanager._conf import get_settings
from wsmanager.node import get_node
from wsmanager.observe import _counters as counters
from wsmanager.ops import _health, drain
from wsmanager.registry import get_journal, get_registry

ROOT = Path(__file__).resolve().parent.parent

#: Modules that keep state on purpose and are not reset (docs/architecture.md says why).
KEPT = {
    "wsmanager._handler_classes": "class definitions",
    "wsmanager._manager": "stateless handles, one per handler name",
    "wsmanager.observe._hub": "observers the user installed (remove)",
    "wsmanager.ops.metrics": "an observer the user installed (uninstall)",
    "wsmanager.ops.tracing": "an observer the user installed (uninstall)",
    "wsmanager.connection._outbox": "a one-entry cache keyed by the message",
    "wsmanager.connection._encodings": "a one-entry cache keyed by the message",
    "wsmanager.servers._uvicorn": "one-entry caches keyed by the message",
    "wsmanager._state": "the list of owners itself",
}


def keeps_state(tree: ast.Module) -> bool:
    """A ``global`` statement, or a private module-level dict, set, list, deque or Counter."""
    if any(isinstance(node, ast.Global) for node in ast.walk(tree)):
        return True
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(node, "value", None)
        name = target.id if isinstance(target, ast.Name) else ""
        if not name.startswith("_") or name.startswith("__") or name.isupper():  # constants: _EXPORTS
            continue
        if isinstance(value, ast.Dict | ast.Set | ast.List):
            return True
        made = getattr(value, "func", None)
        if isinstance(made, ast.Name) and made.id in {"set", "dict", "Counter", "deque"}:
            return True
    return False


def registers(tree: ast.Module) -> bool:
    """The module calls ``_state.owns(...)`` at its top level."""
    return any(
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute)
        and node.value.func.attr == "owns"
        for node in tree.body
    )


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted((ROOT / "wsmanager").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = ast.parse(path.read_text())
    return found


def test_every_module_keeping_state_registers_or_is_kept_on_purpose() -> None:
    stateful = {name for name, tree in modules().items() if keeps_state(tree)}
    registered = {name for name, tree in modules().items() if registers(tree)}
    assert sorted(stateful - registered - set(KEPT)) == []
    assert sorted(set(KEPT) & registered) == []


def test_the_registered_owners_are_the_modules_that_call_owns() -> None:
    """Importing wsmanager.testing imports every owner; each registered under its own name."""
    registered = {name for name, tree in modules().items() if registers(tree)}
    for name in registered:
        __import__(name)
    assert set(_state.owners()) == registered


async def test_one_reset_forgets_every_piece() -> None:
    registry, journal, node, settings = get_registry(), get_journal(), get_node(), get_settings()
    counters.bump(counters.Count.DROPPED_INCOMING)
    _health.set_draining()
    _db.mark_used()
    drain.install()
    testing.reset()
    assert get_registry() is not registry and get_journal() is not journal
    assert get_node() is not node and get_settings() is not settings
    assert counters.stats() == {}
    assert not _health.is_draining()
    assert _db._used is False
    assert drain._hooked_loop is None and drain._drain_task is None


def test_reset_runs_every_owner_even_when_one_raises() -> None:
    ran: list[str] = []

    def broken() -> None:
        ran.append("broken")
        raise RuntimeError("broken owner")

    _state.owns("tests.broken", broken)
    _state.owns("tests.after", lambda: ran.append("after"))
    try:
        with pytest.raises(RuntimeError, match="broken owner"):
            _state.reset()
    finally:
        _state.disown("tests.broken")
        _state.disown("tests.after")
    assert ran == ["broken", "after"]
    assert "tests.broken" not in _state.owners()
