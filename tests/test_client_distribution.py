"""The two distributions of this repository agree: ``wsmanager-client`` (clients/python) and
``wsmanager`` have one version, the server pins the client to it, and the client needs
``websockets`` only. Installing the client alone is proven in
tests/e2e/test_client_only_venv.py."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import wsmanager
import wsmanager_client

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "python"


def project(path: Path) -> dict[str, object]:
    table: dict[str, object] = tomllib.loads((path / "pyproject.toml").read_text())["project"]
    return table


def test_the_client_and_the_server_have_one_version_and_the_server_pins_it() -> None:
    client, server = project(CLIENT), project(ROOT)
    version = client["version"]
    assert server["version"] == version
    assert wsmanager_client.__version__ == wsmanager.__version__ == version
    assert importlib.metadata.version("wsmanager-client") == version
    assert f"wsmanager-client=={version}" in server["dependencies"]  # type: ignore[operator]


def test_the_client_depends_on_websockets_only_and_msgpack_is_an_extra() -> None:
    client = project(CLIENT)
    assert client["name"] == "wsmanager-client"
    assert client["dependencies"] == ["websockets>=13"]
    assert client["license"] == "MIT"
    # MessagePack is an extra (wsmanager-client[msgpack]), never a requirement.
    assert client["optional-dependencies"] == {"msgpack": ["msgpack>=1.0"]}


def test_the_client_ships_its_readme_license_and_py_typed() -> None:
    package = Path(wsmanager_client.__file__).parent
    assert (package / "py.typed").is_file()
    assert (CLIENT / "LICENSE").read_text().startswith("MIT License")
    readme = (CLIENT / "README.md").read_text()
    assert "pip install wsmanager-client" in readme and "from wsmanager_client import" in readme
