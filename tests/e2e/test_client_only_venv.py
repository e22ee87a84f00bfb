"""``wsmanager-client`` installed alone, as a user gets it: a fresh virtual environment outside
the checkout, ``pip install`` of a copy of clients/python (``websockets`` comes from the
package index), and a plain script there that talks to a real server serving the demo.

Slow (the environment and the build take tens of seconds, once per run): marked ``slow``
as well as ``e2e``, so ``make test-fast`` leaves it out and ``make test`` runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.e2e.client import chat_url
from tests.once import built_once
from tests.servers import ROOT, ServerProcess

# A fresh venv and a pip install take tens of seconds on a quiet machine and minutes on
# a loaded one: the module's setup gets the time a build needs, not the 60 s of a test.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

SERVER_ONLY = {"wsmanager", "django", "channels", "daphne", "twisted"}


def build_client_venv(where: Path) -> None:
    """A new virtual environment ``where``/venv with wsmanager-client installed from a copy of
    clients/python (``websockets`` from the package index)."""
    source = where / "src"
    # A copy, so that the build writes nothing into the checkout.
    shutil.copytree(
        ROOT / "clients" / "python",
        source,
        ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"),
    )
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=where,
    )
    assert install.returncode == 0, install.stdout + install.stderr


@pytest.fixture(scope="module")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a new virtual environment that has wsmanager-client and nothing else of ours.

    Built once per run (:func:`tests.once.built_once`): the module's groups, one per server
    kind, may run on several workers; the tests only run scripts in it.
    """
    where = built_once(tmp_path_factory, "client-only", build_client_venv)
    assert not where.is_relative_to(ROOT)
    return where / "venv" / "bin" / "python"


def run_script(python: Path, script: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DJANGO"))}
    run = subprocess.run(
        [str(python), "-I", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=python.parent.parent.parent,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    report: dict[str, object] = json.loads(run.stdout)
    return report


def test_the_client_alone_imports_without_the_server_and_makes_a_call(
    client_python: Path, demo_server: ServerProcess
) -> None:
    """import wsmanager_client loads no Django, Channels, daphne, Twisted or wsmanager module;
    the client connects to the demo, calls who() and send(), and gets their answers."""
    url = chat_url(demo_server, "alone", "?name=alone")
    report = run_script(
        client_python,
        f"""
        import asyncio, importlib.metadata, json, sys
        import wsmanager_client
        from wsmanager_client import connect

        async def main():
            async with connect({url!r}, reconnect=False) as client:
                return client.id, await client.invoke("who"), await client.invoke("send", "hi")

        sid, who, sent = asyncio.run(main())
        print(json.dumps({{
            "id": sid,
            "who": who,
            "sent": sent,
            "loaded": sorted({{m.split(".")[0] for m in sys.modules}}),
            "installed": sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions()),
            "file": wsmanager_client.__file__,
            "version": wsmanager_client.__version__,
        }}))
        """,
    )
    assert report["who"] == [{"id": report["id"], "name": "alone"}]
    assert report["sent"] == {"delivered": 1}
    assert SERVER_ONLY.isdisjoint(report["loaded"])  # type: ignore[arg-type]
    assert "websockets" in report["loaded"]  # type: ignore[operator]
    installed = set(report["installed"]) - {"pip", "setuptools"}  # type: ignore[arg-type]
    assert installed == {"wsmanager-client", "websockets"}
    assert "site-packages" in str(report["file"]) and not str(report["file"]).startswith(str(ROOT))
    assert report["version"] == "0.1.0"


def test_the_client_alone_says_why_the_server_refused_the_handshake(
    client_python: Path, demo_server: ServerProcess
) -> None:
    """A refused handshake (an Origin the demo does not allow) raises HandshakeRefused with the
    HTTP status as an attribute and in its message, in the client-only environment too."""
    url = chat_url(demo_server, "alone")
    report = run_script(
        client_python,
        f"""
        import asyncio, json
        from wsmanager_client import HandshakeRefused, NotConnected, connect

        async def main():
            try:
                await connect({url!r}, origin="http://evil.example", reconnect=False)
            except HandshakeRefused as exc:
                refused = isinstance(exc, NotConnected)
                return {{"status": exc.status, "message": str(exc), "not_connected": refused}}

        print(json.dumps(asyncio.run(main())))
        """,
    )
    assert report["status"] == 403 and report["not_connected"] is True
    assert "HTTP 403" in str(report["message"])
