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


def node_problem(*packages: str) -> str | None:
    """Why the Node tools cannot run here, or None."""
    if shutil.which("node") is None:
        return "Node.js is not installed (make node-deps installs it from Debian's packages as root)"
    for package in packages:
        if not (NODE_MODULES / package / "package.json").exists():
            return f"node_modules/{package} is missing (run make node-deps)"
    return None


def require(*packages: str) -> None:
    """Skip the test (fail it under WSMANAGER_REQUIRE_NODE=1) when the tools are missing."""
    problem = node_problem(*packages)
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


def tsc(directory: Path, *files: str) -> tuple[int, list[TscError], str]:
    """Type-check ``files`` in ``directory`` (strict, no output): exit code, errors, raw output."""
    require("typescript")
    args = [
        "node",
        str(TSC),
        "--noEmit",
        "--strict",
        "--target",
        "es2022",
        "--module",
        "nodenext",
        "--moduleResolution",
        "nodenext",
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
