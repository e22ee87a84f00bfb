"""The npm package ``wsmanager-client`` (clients/js), as its users get it.

``npm pack`` in clients/js builds the package from the client Django serves
(clients/js/build.mjs); the tarball is checked file by file and byte by byte
against what a real server serves, installed with npm into a Vite app written
here, type-checked with the TypeScript compiler, built with ``vite build``,
and run in Chromium against the demo on a real daphne: an RPC call and a
notification. Needs Node.js, npm, and node_modules from ``make node-deps``
(TypeScript, Vite), and Chromium for the last test: without them the tests
skip, and fail under ``WSMANAGER_REQUIRE_NODE=1`` / ``WSMANAGER_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from django.core.management import call_command

from tests.node_tools import NODE_MODULES, ROOT, RUN_TIMEOUT, require, tsc
from tests.servers import DaphneProcess

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

PACKAGE = ROOT / "clients" / "js"
SERVED = "/static/wsmanager/"
SHIPPED = {
    "package/package.json",
    "package/README.md",
    "package/LICENSE",
    "package/dist/wsmanager.js",
    "package/dist/wsmanager.d.ts",
}
SOCKET_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")
PYTHON_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

# The app: typed with the declarations `manage.py wsmanager typescript` writes for the demo's
# chat handler. It joins a room, sends a message, waits for its notification, and reports.
MAIN_TS = """\
import { Client, RpcError, VERSION } from "wsmanager-client";
import type { ChatClient } from "./chat.js";

interface Report {
  version: string;
  id?: string;
  delivered?: number;
  message?: { name: string | null; room: string; text: string };
  error?: string;
}

async function main(out: HTMLElement): Promise<void> {
  const report: Report = { version: VERSION };
  const room = new URLSearchParams(location.search).get("room") ?? "vite";
  const client: ChatClient = new Client(`/ws/chat/${room}/?name=vite`);
  const heard = new Promise<Report["message"]>((resolve) =>
    client.on("message", ({ name, room, text }) => resolve({ name, room, text })),
  );
  try {
    report.id = await client.connect();
    report.delivered = (await client.invoke("send", "hello from vite")).delivered;
    report.message = await heard;
  } catch (err) {
    report.error = err instanceof RpcError ? `RpcError ${err.code}: ${err.message}` : String(err);
  } finally {
    client.close();
  }
  out.textContent = JSON.stringify(report);
  out.dataset.done = "true";
}

void main(document.getElementById("report")!);
"""
INDEX_HTML = """\
<!doctype html>
<html lang="en">
  <head><meta charset="utf-8"><title>wsmanager-client in a Vite app</title></head>
  <body>
    <pre id="report"></pre>
    <script type="module" src="/src/main.ts"></script>
  </body>
</html>
"""
# Each must fail to compile at the line marked, with the code given: the package's types are
# really there (not `any`), and they declare no global `wsmanager` (the module sets none).
WRONG_TS = {
    "unknown_export": ('import { Cilent } from "wsmanager-client";', "TS2724"),
    "no_global": ("const lib = wsmanager;", "TS2304"),
    "wrong_option": ('new Client("/ws/", { timeout: "soon" });', "TS2322"),
    "wrong_state": ('const s: "gone" = new Client("/ws/").state;', "TS2322"),
}


# npm asks no registry for its own updates, audits or funding during the tests.
NPM_QUIET = {"npm_config_update_notifier": "false", "npm_config_audit": "false", "npm_config_fund": "false"}


def run(args: list[str], cwd: Path) -> str:
    """Run a Node tool; fail the test with its output when it fails."""
    env = {**os.environ, **NPM_QUIET}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``npm pack`` in clients/js, as a maintainer runs it before publishing."""
    require(npm=True)
    destination = tmp_path_factory.mktemp("pack")
    run(["npm", "pack", "--pack-destination", str(destination)], PACKAGE)
    (path,) = destination.glob("*.tgz")
    return path


@pytest.fixture(scope="module")
def packed(tarball: Path) -> dict[str, bytes]:
    """The tarball's files by name."""
    files = {}
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is not None:
                files[member.name] = handle.read()
    return files


@pytest.fixture(scope="module")
def app(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Vite app with the tarball installed by npm (offline: the package has no dependencies)."""
    directory = tmp_path_factory.mktemp("vite-app")
    (directory / "package.json").write_text('{"name": "vite-app", "private": true, "type": "module"}\n')
    run(["npm", "install", "--offline", str(tarball)], directory)
    (directory / "index.html").write_text(INDEX_HTML)
    (directory / "src").mkdir()
    (directory / "src" / "main.ts").write_text(MAIN_TS)
    call_command(
        "wsmanager",
        "typescript",
        "chat",
        "--client-module",
        "wsmanager-client",
        "--output",
        str(directory / "src" / "chat.d.ts"),
    )
    return directory


@pytest.fixture(scope="module")
def built_app(app: Path) -> Path:
    """``vite build`` of the app (Vite from the repository's node_modules) for /static/vite-app/."""
    require("vite")
    run(["node", str(NODE_MODULES / "vite" / "bin" / "vite.js"), "build", "--base", "/static/vite-app/"], app)
    return app / "dist"


@pytest.fixture(scope="module")
def app_server(built_app: Path) -> Iterator[DaphneProcess]:
    """The demo on daphne, serving the built app among its static files (vite_app_settings.py)."""
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.browser.vite_app_settings",
        "WSMANAGER_VITE_APP": str(built_app),
    }
    server = DaphneProcess(env=env).start()
    yield server
    server.stop()


def served(server: DaphneProcess, name: str) -> bytes:
    """A file of the browser client as a real server serves it to browsers."""
    response = httpx.get(f"{server.http_url}{SERVED}{name}", timeout=10)
    response.raise_for_status()
    return response.content


def test_pack_ships_the_module_its_types_and_metadata_only(packed: dict[str, bytes]) -> None:
    """The tarball holds the ES module, its declarations, package.json, README and LICENSE."""
    assert set(packed) == SHIPPED


def test_packed_module_is_the_served_script_unchanged(
    packed: dict[str, bytes], demo_server: DaphneProcess
) -> None:
    """dist/wsmanager.js is the bytes Django serves as wsmanager.js, between a prologue that
    only declares the library's home and an epilogue that only exports it."""
    script = served(demo_server, "wsmanager.js")
    module = packed["package/dist/wsmanager.js"]
    assert module.count(script) == 1
    prologue, epilogue = module.split(script)
    code = [line for line in prologue.decode().splitlines() if not line.startswith("//")]
    assert code == ["const wsmanagerModule = {};"]
    match = re.fullmatch(
        r"\nconst wsmanager = wsmanagerModule\.wsmanager;\n"
        r"export const \{ (?P<names>[\w, ]+) \} = wsmanager;\n"
        r"export default wsmanager;\n",
        epilogue.decode(),
    )
    assert match is not None, epilogue.decode()
    # Every value the declarations export is exported by the module, and nothing else.
    declared = re.findall(
        r"^export declare (?:const|class) (\w+)", packed["package/dist/wsmanager.d.ts"].decode(), re.M
    )
    assert sorted(match["names"].split(", ")) == sorted(declared)


def test_packed_types_are_the_served_declarations_without_the_global(
    packed: dict[str, bytes], demo_server: DaphneProcess
) -> None:
    """dist/wsmanager.d.ts is the served wsmanager.d.ts up to its `declare global` block,
    which the npm module leaves out because it defines no global."""
    declarations = served(demo_server, "wsmanager.d.ts").decode()
    lines = packed["package/dist/wsmanager.d.ts"].decode().splitlines(keepends=True)
    body = "".join(line for line in lines if not line.startswith("//"))
    assert lines[0].startswith("//") and declarations.startswith(body)
    left_out = declarations[len(body) :]
    assert re.fullmatch(r"\ndeclare global \{\n(?: .*\n|\n)*\}\n", left_out), left_out


def test_package_json_declares_an_es_module_without_side_effects(packed: dict[str, bytes]) -> None:
    """ESM only, an exports map with types first, no dependencies, no side effects, and the
    version of the Python package and of the client's own VERSION."""
    manifest = json.loads(packed["package/package.json"])
    client_version = re.search(
        r'const VERSION = "([^"]+)"',
        (ROOT / "wsmanager" / "static" / "wsmanager" / "wsmanager.js").read_text(),
    )
    assert client_version is not None
    assert (manifest["name"], manifest["version"], client_version[1]) == (
        "wsmanager-client",
        PYTHON_VERSION,
        PYTHON_VERSION,
    )
    assert manifest["type"] == "module"
    assert manifest["exports"] == {
        ".": {"types": "./dist/wsmanager.d.ts", "import": "./dist/wsmanager.js"},
        "./package.json": "./package.json",
    }
    assert list(manifest["exports"]["."]) == ["types", "import"]  # TypeScript reads the first match
    assert manifest["sideEffects"] is False
    assert manifest["license"] == "MIT"
    assert "MIT License" in packed["package/LICENSE"].decode()
    assert not manifest.get("dependencies") and not manifest.get("peerDependencies")


def test_importing_the_package_sets_no_global(app: Path) -> None:
    """What `sideEffects: false` promises: importing the module (here in Node.js, as server-side
    rendering does) adds nothing to the global object; the named exports are the default's members."""
    script = """
        const before = new Set(Object.getOwnPropertyNames(globalThis));
        const mod = await import("wsmanager-client");
        const added = Object.getOwnPropertyNames(globalThis).filter((name) => !before.has(name));
        const same = Object.keys(mod.default).every((name) => mod[name] === mod.default[name]);
        const client = new mod.Client("ws://127.0.0.1:9/");
        console.log(JSON.stringify({ added, same, members: Object.keys(mod.default),
                                     state: client.state, version: mod.VERSION }));
    """
    report = json.loads(run(["node", "--input-type=module", "-e", script], app))
    assert report["added"] == []
    assert report["same"] is True
    assert {"Client", "RpcError", "WsManagerError", "ErrorCodes", "VERSION"} <= set(report["members"])
    assert (report["state"], report["version"]) == ("idle", PYTHON_VERSION)


@pytest.mark.parametrize("resolution", ["bundler", "nodenext"])
def test_an_app_importing_the_package_type_checks(app: Path, resolution: str) -> None:
    """The Vite app (typed with the generated ChatClient) compiles under strict TypeScript,
    resolving the package as a bundler does and as Node.js does."""
    code, errors, output = tsc(app, "src/main.ts", resolution=resolution)
    assert (code, errors) == (0, []), output


def test_wrong_uses_of_the_package_fail_to_type_check(app: Path) -> None:
    """Misuses fail on their own line with the expected error, so the types are the package's."""
    prelude = 'import { Client } from "wsmanager-client";\n'
    for name, (line, _) in WRONG_TS.items():
        (app / "src" / f"wrong_{name}.ts").write_text(f"{prelude}{line}\nexport {{}};\n")
    files = [f"src/wrong_{name}.ts" for name in WRONG_TS]
    code, errors, output = tsc(app, *files, resolution="bundler")
    assert code != 0
    found = {(Path(e.file).stem.removeprefix("wrong_"), e.line, e.code) for e in errors}
    assert found == {(name, 2, error) for name, (_, error) in WRONG_TS.items()}, output


def test_vite_app_calls_and_is_notified_in_chromium(
    app_server: DaphneProcess, new_page: Callable[[], Page]
) -> None:
    """The app Vite built from the installed package runs in Chromium against the demo on a
    real daphne, which serves the app's files too: it connects, calls `send`, and receives
    its own `message` notification."""
    page = new_page()
    page.goto(f"{app_server.http_url}/static/vite-app/index.html?room=npm-vite")
    page.wait_for_selector("#report[data-done]")
    report: dict[str, Any] = json.loads(page.inner_text("#report"))
    assert "error" not in report, report["error"]
    assert SOCKET_ID.match(report["id"])
    assert report["delivered"] == 1
    assert report["message"] == {"name": "vite", "room": "npm-vite", "text": "hello from vite"}
    assert report["version"] == PYTHON_VERSION
    # The bundle keeps the library to itself: no global, unlike the static script.
    assert page.evaluate("typeof window.wsmanager") == "undefined"
