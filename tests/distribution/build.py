"""Build every distribution of the repository as a release would, from a clean copy.

A distribution is the root project and each ``clients/<name>/`` that has a
``pyproject.toml`` (the Python client, once it is its own distribution). For
each, :func:`build_all` builds, with ``python -m build`` in isolated
environments (setuptools from PyPI, as for anyone):

* the sdist, and a wheel built from that sdist (what pip makes of it), and
* a wheel built straight from the source tree (what ``pip install .`` makes),

each from a fresh copy of the files a clean clone would have (tracked, or
untracked and not ignored: the working tree's edits count, while a stale
``build/`` or ``*.egg-info`` never leaks in). Both wheels land in one
directory per route; the one from the sdist is the one to install,
together with the others, with ``pip install --find-links``.

Needs ``build`` (the ``test`` extra) and ``git``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["ROOT", "Distribution", "build_all", "projects", "wheel_contents"]


@dataclass(frozen=True)
class Distribution:
    """One project's built files."""

    project: Path
    sdist: Path
    wheel: Path  # built from the sdist: the one users install
    tree_wheel: Path  # built from the source tree

    @property
    def name(self) -> str:
        """The distribution name as the wheel's file name spells it (``wsmanager``)."""
        return self.wheel.name.split("-")[0]


def projects() -> list[Path]:
    """The root project and every ``clients/*`` directory with a ``pyproject.toml``."""
    return [ROOT, *sorted(p.parent for p in ROOT.glob("clients/*/pyproject.toml"))]


def clean_copy(project: Path, dest: Path) -> Path:
    """Copy ``project``'s files as a clean clone has them (plus uncommitted edits) to ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
        cwd=project,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = project / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def _build(source: Path, outdir: Path, *flags: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "build", *flags, "--outdir", str(outdir), str(source)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"python -m build {' '.join(flags)} {source} failed:\n{result.stdout}\n{result.stderr}"
        )


def _one(outdir: Path, pattern: str) -> Path:
    found = sorted(outdir.glob(pattern))
    if len(found) != 1:
        raise RuntimeError(f"expected one {pattern} in {outdir}, found {[p.name for p in found]}")
    return found[0]


def build_all(workdir: Path) -> list[Distribution]:
    """Build each project's sdist, its wheel from the sdist, and its wheel from the tree.

    The wheels users install land in ``workdir / "dist"`` (give it to
    ``--find-links``); the wheels from the tree in ``workdir / "tree"``.
    """
    dist, tree = workdir / "dist", workdir / "tree"
    built = []
    for n, project in enumerate(projects()):
        for_sdist = clean_copy(project, workdir / f"src-{n}-sdist")
        for_tree = clean_copy(project, workdir / f"src-{n}-tree")
        before = set(dist.glob("*")) if dist.exists() else set()
        _build(for_sdist, dist)  # no flag: the sdist, then a wheel from it
        _build(for_tree, tree / str(n), "--wheel")
        made = set(dist.glob("*")) - before
        sdist = _one_of(made, ".tar.gz")
        wheel = _one_of(made, ".whl")
        built.append(Distribution(project, sdist, wheel, _one(tree / str(n), "*.whl")))
    return built


def _one_of(paths: set[Path], suffix: str) -> Path:
    found = [p for p in paths if p.name.endswith(suffix)]
    if len(found) != 1:
        raise RuntimeError(f"expected one new *{suffix}, found {sorted(p.name for p in found)}")
    return found[0]


def wheel_contents(wheel: Path) -> dict[str, str]:
    """Each file of ``wheel`` and the SHA-256 of its bytes; ``RECORD`` left out (it lists
    the same hashes, in an order that may differ)."""
    with zipfile.ZipFile(wheel) as archive:
        return {
            info.filename: hashlib.sha256(archive.read(info)).hexdigest()
            for info in archive.infolist()
            if not info.filename.endswith(".dist-info/RECORD")
        }
