"""wsmanager's pytest plugin (``wsmanager.testing.plugin``), loaded by pytest through
the ``pytest11`` entry point: run in a pytest of its own, in a directory of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = textwrap.dedent(
    """
    import django
    import pytest
    from django.conf import settings

    settings.configure(INSTALLED_APPS=["wsmanager"])
    django.setup()

    from wsmanager import ConnectionInfo, get_manager, stats
    from wsmanager.registry import get_registry

    @pytest.mark.asyncio
    async def test_one_leaves_a_socket_and_a_count_behind():
        await get_registry().add(ConnectionInfo(id="s1", handler="h", node="n"))
        assert await get_manager("h").acount() == 1
        assert stats() == {}

    @pytest.mark.asyncio
    async def test_two_starts_clean():
        assert await get_manager("h").acount() == 0
    """
)


def run_pytest(tmp_path: Path, *args: str, ini: str = "") -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    (tmp_path / "test_inner.py").write_text(TESTS)
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTEST_ADDOPTS")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_plugin_is_loaded_by_its_entry_point_and_resets_between_tests(tmp_path: Path) -> None:
    run = run_pytest(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


@pytest.mark.parametrize(
    ("args", "ini"),
    [(("-p", "no:wsmanager"), ""), ((), "wsmanager_reset = false")],
    ids=["plugin-off", "reset-off"],
)
def test_without_the_reset_the_registry_leaks_into_the_next_test(
    tmp_path: Path, args: tuple[str, ...], ini: str
) -> None:
    """The control: the same tests fail when the plugin is off or told not to reset."""
    run = run_pytest(tmp_path, *args, ini=ini)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 1 passed" in run.stdout
    assert "test_two_starts_clean" in run.stdout
