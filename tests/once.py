"""Build something once per test run, whichever pytest-xdist worker needs it first.

The groups of one module (one per server kind) may run on several workers, each with
its own module-scoped fixtures. What such a fixture builds slowly and then only reads
(a virtual environment, a generated project) is built once per run instead:
:func:`built_once` builds it in the run's temporary directory, which every worker of
the run shares, under a file lock, and the other workers use what the first built.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary directory of the whole run: the worker's base directory's parent
    under pytest-xdist (``pytest-N/popen-gw0`` → ``pytest-N``), else the base directory."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The directory ``name`` of the run's temporary directory, which ``build`` (given the
    empty directory) filled once in this run. A build that failed is tried again by the
    next caller (it raises there too, with its own message); callers must not change the
    directory, which others may be reading."""
    where = run_dir(tmp_path_factory) / name
    with (where.parent / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = where.parent / f"{name}.built"
        if not done.exists():
            shutil.rmtree(where, ignore_errors=True)
            where.mkdir()
            build(where)
            done.touch()
    return where
