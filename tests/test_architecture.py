"""The package's shape: imports point down (no cycle, counting every import).

There is no line cap: a module should read in one sitting, and no number is a
reason to move code (issue 22)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    assert "3 kept, 0 broken" in run.stdout
