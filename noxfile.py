"""The support matrix: the oldest and the newest of what wsmanager supports.

``make matrix`` (or ``.venv/bin/nox``) runs one session per entry of
:data:`MATRIX`, each in a fresh virtual environment with that Python and
that Django:

* ``unit``: the unit suite (everything but the end-to-end, browser and
  wheel tests; the Redis unit tests included);
* ``servers``: :data:`SERVER_MODULES` of the end-to-end suite, on
  :data:`SERVERS` (real processes, Redis);
* ``wheel``: ``tests/distribution``: every distribution built, the wheel
  installed beside that Django in a fresh environment, and a project of the
  user's own served by daphne.

``nox -s "tests(python='3.13', django='6.1')" -- wheel`` runs one session's named
steps only. The supported versions and the policy: docs/versioning.md.

A Python the machine lacks is a failure, never a skip: nox looks on ``PATH``
and in pyenv's versions (``$PYENV_ROOT``, else ``~/.pyenv``), never downloads
one, and fails the session that needs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.error_on_missing_interpreters = True
nox.options.download_python = "never"
nox.options.sessions = ["tests"]

#: (Python, Django) pairs: the oldest supported, and the newest.
MATRIX = [("3.11", "5.2"), ("3.13", "6.1")]
#: With the oldest Django, the oldest Channels and channels_redis too (pyproject's floors).
FLOORS = {"5.2": ["channels~=4.2.0", "channels_redis~=4.2.0"]}
#: End-to-end modules that meet the most of Django, Channels and the servers: RPC,
#: sessions and users, the admin and its templates, the management command, and
#: recovery across processes (Redis registry, streams and channel layer).
SERVER_MODULES = [
    "tests/e2e/test_rpc_e2e.py",
    "tests/e2e/test_users_e2e.py",
    "tests/e2e/test_admin_e2e.py",
    "tests/e2e/test_management_command.py",
    "tests/e2e/test_recovery_e2e.py",
]
#: daphne, and uvicorn with the implementation ``--ws auto`` picks.
SERVERS = "daphne,uvicorn-sansio"
STEPS = ("unit", "servers", "wheel")


def _version(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name))


def _works(command: str) -> bool:
    try:
        return subprocess.run([command, "-c", ""], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _find_pythons() -> None:
    """Put pyenv's interpreters of the matrix on PATH (a pyenv shim of a version that
    is not active does not run), and say which Python is missing."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    for python in sorted({python for python, _ in MATRIX}):
        command = shutil.which(f"python{python}")
        if command and _works(command):
            continue
        found = sorted(root.glob(f"versions/{python}.*/bin/python{python}"), key=_version)
        if found:
            os.environ["PATH"] = f"{found[-1].parent}{os.pathsep}{os.environ['PATH']}"
        else:
            print(
                f"noxfile: no Python {python} on PATH nor in {root}/versions: the sessions on "
                f"{python} fail (install it: pyenv install {python})"
            )


_find_pythons()


@nox.session
@nox.parametrize(("python", "django"), MATRIX)
def tests(session: nox.Session, django: str) -> None:
    """Unit suite, real servers and the installed wheel on one Python and Django."""
    steps = session.posargs or list(STEPS)
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        session.error(f"unknown steps {unknown}; the steps are {', '.join(STEPS)}")
    # wsmanager depends on wsmanager-client of the same version, which lives in this
    # repository (clients/python) and is not on an index: it goes in first.
    session.install("-e", "./clients/python")
    session.install("-e", ".[test]", f"django~={django}.0", *FLOORS.get(django, []))
    session.run(
        "python",
        "-c",
        "import sys, django, channels, daphne; "
        "print('Python', sys.version.split()[0], '| Django', django.get_version(), "
        "'| Channels', channels.__version__, '| daphne', daphne.__version__)",
    )
    pytest = ["python", "-m", "pytest", "-p", "no:cacheprovider"]
    if "unit" in steps:
        session.run(*pytest, "-m", "not e2e and not browser and not wheel")
    if "servers" in steps:
        session.run(*pytest, *SERVER_MODULES, env={"WSMANAGER_TEST_SERVERS": SERVERS})
    if "wheel" in steps:
        session.run(*pytest, "tests/distribution", env={"WSMANAGER_TEST_WHEEL": "1"})
