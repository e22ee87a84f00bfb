"""The package's shape: imports point down (no cycle, counting every import).

There is no line cap: a module should read in one sitting, and no number is a
reason to move code (issue 22)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("package", ["wsmanager", "wsmanager_client"])
def test_no_import_cycle_among_the_modules_of(package: str) -> None:
    """No module reaches itself through imports, counting those inside functions
    and under TYPE_CHECKING (grimp sees every import statement)."""
    graph = grimp.build_graph(package, include_external_packages=False)
    modules = sorted(m for m in graph.modules if m != package)  # the root re-exports everything
    cycles = [
        (module, other)
        for module in modules
        for other in graph.find_modules_directly_imported_by(module)
        if other != package and graph.chain_exists(importer=other, imported=module)
    ]
    assert cycles == []


def test_the_layers_contracts_are_kept() -> None:
    """import-linter's contracts in pyproject.toml hold: the server's layers, the client's
    layers, and the client standing alone (no wsmanager, Django, Channels, daphne, Twisted)."""
    run = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports"))], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(contracts())} kept, 0 broken" in run.stdout


def contracts() -> list[dict[str, Any]]:
    """The import-linter contracts of pyproject.toml."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        found: list[dict[str, Any]] = tomllib.load(f)["tool"]["importlinter"]["contracts"]
    return found


def modules() -> list[tuple[str, ...]]:
    """Every module of wsmanager/ as a path of names (a package is its folder)."""
    found = []
    for path in sorted((ROOT / "wsmanager").rglob("*.py")):
        parts = path.relative_to(ROOT / "wsmanager").with_suffix("").parts
        found.append(parts[:-1] if parts[-1] == "__init__" else parts)
    return found


def layer_names(contract: dict[str, Any]) -> set[str]:
    """The module names a layers contract lists (``a | b``, ``a : b``)."""
    return {name.strip() for layer in contract["layers"] for name in re.split(r"[|:]", layer)}


def test_every_module_is_in_a_layers_contract() -> None:
    """Each top-level entry of wsmanager/ is a layer of the main contract, and each module of
    a subsystem package is a layer of its package's contract (testing/ and management/, whose
    modules Django and pytest find by name, are one layer each)."""
    by_container = {c["containers"][0]: layer_names(c) for c in contracts() if c["type"] == "layers"}
    missing = []
    for parts in modules():
        if not parts or (parts[0] in {"testing", "management"} and len(parts) > 1):
            continue
        container = ".".join(("wsmanager", *parts[:-1]))
        if container not in by_container or parts[-1] not in by_container[container]:
            missing.append("/".join(parts))
    assert missing == []


def test_every_module_is_in_the_architecture_page() -> None:
    """docs/architecture.md's table has a row for each module (a package as ``name/``)."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    rows = set(re.findall(r"^\| `([^`]+)` \|", page, re.MULTILINE))
    expected = {
        "/".join(parts) + ("/" if (ROOT / "wsmanager" / Path(*parts)).is_dir() else "")
        for parts in modules()
        if parts
    }
    expected.add("__init__")
    assert sorted(expected - rows) == []
    assert sorted(rows - expected) == []


def test_the_page_draws_every_layer_of_the_main_contract() -> None:
    """Each top-level layer of the main contract is named in the diagram, in the contract's order."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    diagram = page.split("## The layers, top to bottom", 1)[1].split("```")[1]
    (main,) = [c for c in contracts() if c.get("containers") == ["wsmanager"]]
    positions = []
    for layer in main["layers"]:
        first = re.split(r"[|:]", layer)[0].strip()
        match = re.search(rf"(?<![\w/]){re.escape(first)}/?(?!\w)", diagram)
        assert match, first
        positions.append(match.start())
    assert positions == sorted(positions)
