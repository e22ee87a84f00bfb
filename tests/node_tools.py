"""The Node.js tools of the contract tests: the TypeScript compiler and the OpenRPC meta-schema.

Both come from the project's package.json, installed into node_modules by
``make node-deps`` (``make test`` runs it). When Node.js or those packages
are missing the tests that need them skip with a one-line reason, unless
``WSMANAGER_REQUIRE_NODE=1`` (CI sets it): then they fail, so that CI cannot
pass by skipping them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "node_modules"
TSC = NODE_MODULES / "typescript" / "bin" / "tsc"
CLIENT_DTS = ROOT / "wsmanager" / "static" / "wsmanager" / "wsmanager.d.ts"
#: Upper bound of one compiler or node run: a hung tool fails the test instead of pytest's timeout.
RUN_TIMEOUT = 50

_TSC_ERROR = re.compile(
    r"^(?P<file>[^(\s]+)\((?P<line>\d+),(?P<col>\d+)\): error (?P<code>TS\d+): (?P<text>.*)$"
)


def node_version() -> tuple[int, int, int] | None:
    """The version of ``node`` on PATH, or None when it does not answer."""
    try:
        proc = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    except OSError:
        return None
    match = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)\s*", proc.stdout)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def satisfies(version: tuple[int, int, int], engines: str) -> bool:
    """Whether ``version`` is in an npm ``engines`` range made of ``||``-joined sets of
    ``^X.Y.Z``, ``>=``, ``>``, ``<=``, ``<`` and ``=`` comparators (what Node tools
    declare). A comparator of another form is assumed to match: the tool then says
    for itself what it lacks."""
    comparators = {
        ">=": lambda v, w: v >= w,
        ">": lambda v, w: v > w,
        "<=": lambda v, w: v <= w,
        "<": lambda v, w: v < w,
        "=": lambda v, w: v == w,
        "^": lambda v, w: v >= w and v[0] == w[0],
    }
    for alternative in engines.split("||"):
        ok = True
        for comparator in alternative.split():
            match = re.fullmatch(r"(>=|<=|>|<|=|\^)?v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", comparator)
            if match is None:
                continue
            wanted = (int(match[2]), int(match[3] or 0), int(match[4] or 0))
            ok = ok and comparators[match[1] or "="](version, wanted)
        if ok:
            return True
    return False


def node_problem(*packages: str, npm: bool = False) -> str | None:
    """Why the Node tools cannot run here, or None: Node.js (and npm when asked) on PATH,
    each package in node_modules, and a Node.js that each package's ``engines`` accepts
    (Debian 12's Node.js 18 is too old for Vite 8)."""
    if shutil.which("node") is None:
        return "Node.js is not installed (make node-deps installs it from Debian's packages as root)"
    if npm and shutil.which("npm") is None:
        return "npm is not installed (make node-deps installs it from Debian's packages as root)"
    for package in packages:
        manifest = NODE_MODULES / package / "package.json"
        if not manifest.exists():
            return f"node_modules/{package} is missing (run make node-deps)"
        engines = json.loads(manifest.read_text()).get("engines", {}).get("node")
        version = node_version()
        if engines and version is not None and not satisfies(version, engines):
            shown = ".".join(map(str, version))
            return f"{package} needs Node.js {engines}, this is {shown}"
    return None


def require(*packages: str, npm: bool = False) -> None:
    """Skip the test (fail it under WSMANAGER_REQUIRE_NODE=1) when the tools are missing."""
    problem = node_problem(*packages, npm=npm)
    if problem is None:
        return
    if os.environ.get("WSMANAGER_REQUIRE_NODE") == "1":
        pytest.fail(f"{problem} (WSMANAGER_REQUIRE_NODE=1)", pytrace=False)
    pytest.skip(problem)


@dataclass(frozen=True)
class TscError:
    file: str
    line: int
    code: str
    text: str


def tsc(directory: Path, *files: str, resolution: str = "nodenext") -> tuple[int, list[TscError], str]:
    """Type-check ``files`` in ``directory`` (strict, no output): exit code, errors, raw output.

    ``resolution`` is how imports are resolved: ``nodenext`` (Node.js's rules), or
    ``bundler`` (what Vite's and webpack's templates set, with ``--module esnext``)."""
    require("typescript")
    args = [
        "node",
        str(TSC),
        "--noEmit",
        "--strict",
        "--target",
        "es2022",
        "--module",
        "nodenext" if resolution == "nodenext" else "esnext",
        "--moduleResolution",
        resolution,
        "--lib",
        "es2022,dom",
        "--pretty",
        "false",
        *files,
    ]
    proc = subprocess.run(args, cwd=directory, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    output = proc.stdout + proc.stderr
    errors = []
    for line in output.splitlines():
        match = _TSC_ERROR.match(line.strip())
        if match:
            errors.append(TscError(match["file"], int(match["line"]), match["code"], match["text"]))
    return proc.returncode, errors, output


@cache
def openrpc_meta_schema() -> dict[str, Any]:
    """The OpenRPC meta-schema (npm @open-rpc/meta-schema), read with node."""
    require("@open-rpc/meta-schema")
    script = 'process.stdout.write(JSON.stringify(require("@open-rpc/meta-schema").default))'
    proc = subprocess.run(
        ["node", "-e", script], cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=True
    )
    schema: dict[str, Any] = json.loads(proc.stdout)
    return schema


@cache
def json_schema_meta_schema() -> dict[str, Any]:
    """The JSON Schema meta-schema the OpenRPC one refers to (npm @json-schema-tools/meta-schema)."""
    require("@json-schema-tools/meta-schema")
    schema: dict[str, Any] = json.loads(
        (NODE_MODULES / "@json-schema-tools" / "meta-schema" / "schema.json").read_text()
    )
    return schema
