"""The wheel as users get it: built, installed into a fresh virtual environment outside
the checkout, and used by a project of the user's own (not the demo).

The module builds every distribution (:mod:`tests.distribution.build`), makes a
virtual environment in a temporary directory with this interpreter's Python,
installs the Django of this test run (``X.Y``, as a project would have it), then
the built wheels together (``--find-links``), and checks that pip kept that
Django. In it, a project made by ``django-admin startproject`` with an app of its
own (a model, a migration, an RPC handler) runs ``migrate``, ``collectstatic``
and ``findstatic``, is served by daphne (a real process) on Redis (registry and
channel layer), answers ``@rpc`` calls to a real WebSocket client, shows the
socket on wsmanager's admin page and to ``manage.py wsmanager list|count``.

Nothing here imports the checkout in the environment: every command runs in the
project's directory with a clean environment, and the test checks where
``wsmanager`` was imported from. Every command and the server run with every
deprecation warning printed; one raised in wsmanager's files or the project's
fails the module (a Python or Django deprecation the package still uses).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import django
import httpx
import pytest
import redis

from tests import redis_support
from tests.distribution.build import ROOT, Distribution, build_all, wheel_contents
from tests.e2e.client import Peer
from tests.servers import free_port, wait_for_port

pytestmark = [pytest.mark.wheel, pytest.mark.redis, pytest.mark.timeout(900)]

redis_url = redis_support.redis_url

#: The Django the user's project has: the one of this test run (nox installs 5.2 or 6.1).
DJANGO = f"{django.VERSION[0]}.{django.VERSION[1]}"
PASSWORD = "wheel-smoke-password"
STATIC = ("wsmanager.js", "wsmanager.mjs", "wsmanager.d.ts", "wsmanager.d.mts")


@dataclass
class Installed:
    """The fresh environment, the user's project in it, and how pip left Django."""

    venv: Path
    project: Path
    env: dict[str, str]
    django_before: str
    django_after: str
    #: The stderr of every command run, for :func:`warnings_of_wsmanager`.
    stderr: list[str] = field(default_factory=list)

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(
        self, *args: str, check: bool = True, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``python ARGS`` of the environment, in the project's directory."""
        done = subprocess.run(
            [str(self.python), *args],
            cwd=self.project,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.stderr.append(done.stderr)
        if check and done.returncode != 0:
            raise AssertionError(
                f"python {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done

    def manage(
        self, *args: str, check: bool = True, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run("manage.py", *args, check=check, extra_env=extra_env)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would point Python at the checkout."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE", "PYTHONSTARTUP"}
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("WSMANAGER")}
    # Every deprecation printed (Python hides most by default): see warnings_of_wsmanager.
    warnings = "always::DeprecationWarning,always::PendingDeprecationWarning"
    return {
        **env,
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONWARNINGS": warnings,
        **extra,
    }


def warnings_of_wsmanager(output: str, project: Path) -> list[str]:
    """The warning lines (``path:line: Category: message``) raised in wsmanager's files
    or in the project's: a deprecation of this Python or Django that the package (or
    the code its docs show) still uses. Other packages' warnings are theirs."""
    ours = re.compile(rf"^(\S*/site-packages/wsmanager/|{re.escape(str(project))}/)\S+:\d+: \w*Warning: ")
    return [line for line in output.splitlines() if ours.match(line)]


# -- the user's project ------------------------------------------------------------------

SETTINGS = """
# -- added for wsmanager ----------------------------------------------------------------
import os

# daphne first, as docs/quickstart.md says: it gives runserver WebSockets (check W003).
INSTALLED_APPS = ["daphne", *INSTALLED_APPS, "wsmanager", "notes"]
ASGI_APPLICATION = "mysite.asgi.application"
STATIC_ROOT = BASE_DIR / "collected"

REDIS_URL = os.environ["SMOKE_REDIS_URL"]
PREFIX = os.environ["SMOKE_PREFIX"]
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": PREFIX + ":asgi"},
    }
}
WSMANAGER = {
    "REGISTRY": {
        "BACKEND": "wsmanager.registry.redis.RedisRegistry",
        "OPTIONS": {"url": REDIS_URL, "prefix": PREFIX + ":wsm"},
    },
    "HEARTBEAT_INTERVAL": 1.0,
}
"""

ASGI = '''
"""ASGI entry point: Django for HTTP, wsmanager for WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from notes.handlers import NotesHandler  # noqa: E402
from wsmanager import route, websocket_app  # noqa: E402

application = ProtocolTypeRouter(
    {"http": django_app, "websocket": websocket_app([route("ws/notes/", NotesHandler)])}
)
'''

MODELS = """
from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=200)
"""

HANDLERS = """
from wsmanager import RpcError, RpcHandler, rpc

from .models import Note


class NotesHandler(RpcHandler):
    handler_name = "notes"

    async def on_connect(self) -> None:
        await self.join("notes.readers")

    @rpc
    async def add(self, a: int, b: int) -> int:
        return a + b

    @rpc
    def write(self, text: str) -> int:
        if not text:
            raise RpcError(4000, "empty note")
        Note.objects.create(text=text)
        return Note.objects.count()
"""


def make_project(installed: Installed) -> None:
    """``startproject`` and ``startapp``, then the few lines a user adds for wsmanager."""
    installed.run("-m", "django", "startproject", "mysite", ".")
    installed.run("-m", "django", "startapp", "notes")
    settings = installed.project / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + SETTINGS)
    (installed.project / "mysite" / "asgi.py").write_text(ASGI.lstrip())
    (installed.project / "notes" / "models.py").write_text(MODELS.lstrip())
    (installed.project / "notes" / "handlers.py").write_text(HANDLERS.lstrip())


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> list[Distribution]:
    return build_all(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def installed(
    dists: list[Distribution], redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    place = tmp_path_factory.mktemp("user")
    assert not place.resolve().is_relative_to(ROOT), "the environment must be outside the checkout"
    venv, project = place / "venv", place / "project"
    project.mkdir()
    prefix = f"wheel{secrets.token_hex(4)}"
    env = clean_env(SMOKE_REDIS_URL=redis_url, SMOKE_PREFIX=prefix, DJANGO_SETTINGS_MODULE="mysite.settings")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
    box = Installed(venv, project, env, "", "")
    box.run("-m", "pip", "install", "--quiet", f"django~={DJANGO}.0")
    box.django_before = box.run("-c", "import django; print(django.get_version())").stdout.strip()
    wheels = [f"{d.name}{'[redis]' if d.project == ROOT else ''} @ {d.wheel.as_uri()}" for d in dists]
    box.run("-m", "pip", "install", "--quiet", "--find-links", str(dists[0].wheel.parent), *wheels)
    box.django_after = box.run("-c", "import django; print(django.get_version())").stdout.strip()
    make_project(box)
    box.manage("makemigrations", "notes")
    box.manage("migrate", "--noinput")
    box.manage(
        "createsuperuser",
        "--noinput",
        "--username",
        "root",
        "--email",
        "root@example.org",
        extra_env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD},
    )
    yield box
    client = redis.Redis.from_url(redis_url)
    for pattern in (f"{prefix}*", f"{{{prefix}*"):  # and the registry's keys, its prefix in braces
        for key in client.scan_iter(match=pattern):
            client.delete(key)
    client.close()
    daphne_log = project / "daphne.log"
    output = "\n".join([*box.stderr, daphne_log.read_text() if daphne_log.exists() else ""])
    assert not warnings_of_wsmanager(output, project), warnings_of_wsmanager(output, project)


@dataclass
class Live:
    port: int
    log: Path

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def live(installed: Installed) -> Iterator[Live]:
    """daphne of the environment serving the user's project."""
    port = free_port()
    log = installed.project / "daphne.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(installed.python),
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "mysite.asgi:application",
            ],
            cwd=installed.project,
            env=installed.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, 60.0, proc)
    except RuntimeError as exc:
        proc.kill()
        raise RuntimeError(f"{exc}\n{log.read_text(errors='replace')}") from None
    yield Live(port, log)
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text


# -- the distributions -------------------------------------------------------------------


def test_the_wheel_holds_wsmanager_alone_with_its_data(dists: list[Distribution]) -> None:
    server = dists[0]
    names = set(wheel_contents(server.wheel))
    top = {name.split("/")[0] for name in names}
    assert top == {"wsmanager", f"wsmanager-{server.wheel.name.split('-')[1]}.dist-info"}, top
    assert "wsmanager/py.typed" in names
    assert {f"wsmanager/static/wsmanager/{f}" for f in STATIC} <= names
    assert "wsmanager/templates/admin/wsmanager/live_connections.html" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    with zipfile.ZipFile(server.wheel) as archive:
        meta = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        licenses = [n for n in names if "/licenses/" in n]
    assert "Requires-Dist: django<7,>=5.2" in meta
    assert "Requires-Python: >=3.11" in meta
    assert licenses, "the license text ships in the wheel"


def test_the_sdist_is_a_source_release(dists: list[Distribution]) -> None:
    import tarfile

    with tarfile.open(dists[0].sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "docs/versioning.md"} <= names
    assert {"tests/conftest.py", "demo_chat/settings.py", "manage.py"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_each_sdist_builds_the_wheel_the_tree_builds(dists: list[Distribution]) -> None:
    for dist in dists:
        from_sdist, from_tree = wheel_contents(dist.wheel), wheel_contents(dist.tree_wheel)
        assert from_sdist.keys() == from_tree.keys(), (dist.name, from_sdist.keys() ^ from_tree.keys())
        differ = [name for name in from_sdist if from_sdist[name] != from_tree[name]]
        assert not differ, (dist.name, differ)


# -- installed ---------------------------------------------------------------------------


def test_pip_keeps_the_projects_django(installed: Installed) -> None:
    assert installed.django_before.startswith(f"{DJANGO}."), installed.django_before
    assert installed.django_after == installed.django_before
    installed.run("-m", "pip", "check")


def test_wsmanager_is_imported_from_the_environment_with_its_types(installed: Installed) -> None:
    where = installed.run("-c", "import wsmanager, pathlib; print(pathlib.Path(wsmanager.__file__).parent)")
    package = Path(where.stdout.strip())
    assert package.is_relative_to(installed.venv), package
    assert (package / "py.typed").is_file()
    for absent in ("demo_chat", "bench"):
        found = installed.run("-c", f"import importlib.util as u; print(u.find_spec({absent!r}))")
        assert found.stdout.strip() == "None", (absent, found.stdout)


def test_the_project_checks_and_migrates(installed: Installed) -> None:
    check = installed.manage("check")
    assert "no issues" in check.stdout, check.stdout + check.stderr
    plan = installed.manage("showmigrations", "notes")
    assert "[X] 0001_initial" in plan.stdout, plan.stdout
    assert installed.manage("makemigrations", "--check", "--dry-run", check=False).returncode == 0


def test_the_static_client_is_found_and_collected(installed: Installed, dists: list[Distribution]) -> None:
    with zipfile.ZipFile(dists[0].wheel) as wheel:
        shipped = {name: wheel.read(f"wsmanager/static/wsmanager/{name}") for name in STATIC}
    for name in STATIC:
        found = installed.manage("findstatic", "--first", f"wsmanager/{name}").stdout
        path = Path(found.strip().splitlines()[-1].strip())
        assert path.is_file() and path.is_relative_to(installed.venv), found
    installed.manage("collectstatic", "--noinput")
    for name, content in shipped.items():
        assert (installed.project / "collected" / "wsmanager" / name).read_bytes() == content


async def test_rpc_calls_are_answered_under_daphne(live: Live) -> None:
    peer = await Peer.open(f"{live.ws_url}/ws/notes/")
    try:
        assert await peer.call("add", 2, 3) == 5
        assert await peer.call("write", text="first") == 1
        assert await peer.call("write", text="second") == 2
        refused = await peer.request("write", text="")
        assert refused["error"]["code"] == 4000 and refused["error"]["message"] == "empty note"
        wrong = await peer.request("add", "two", 3)
        assert wrong["error"]["code"] == -32602, wrong
    finally:
        await peer.close()


async def test_the_command_lists_and_counts_the_live_socket(installed: Installed, live: Live) -> None:
    peer = await Peer.open(f"{live.ws_url}/ws/notes/")
    try:
        listed = installed.manage("wsmanager", "list", "--json")
        rows = {row["id"]: row for row in map(json.loads, listed.stdout.splitlines())}
        assert peer.id in rows, listed.stdout + listed.stderr
        assert rows[peer.id]["groups"] == ["notes.readers"]
        assert int(installed.manage("wsmanager", "count").stdout) == len(rows)
    finally:
        await peer.close()


async def test_the_admin_page_shows_the_live_socket(live: Live) -> None:
    peer = await Peer.open(f"{live.ws_url}/ws/notes/")
    async with httpx.AsyncClient(base_url=live.http_url, timeout=30) as admin:
        form = await admin.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token is not None, form.text
        login = {"username": "root", "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)}
        assert (await admin.post("/admin/login/?next=/admin/", data=login)).status_code == 302
        page = await admin.get("/admin/wsmanager/liveconnection/", params={"q": peer.id})
    await peer.close()
    assert page.status_code == 200, page.text
    assert f'<tr data-socket="{peer.id}">' in page.text
    assert "precise to one heartbeat" in page.text  # wsmanager's own template, from the wheel
