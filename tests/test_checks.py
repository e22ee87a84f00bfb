"""The project checks (``wsmanager._checks``): W002 ("wsmanager" not installed) and W003
(``runserver`` without daphne), in-process and in a real ``manage.py check`` of a
project made by ``django-admin startproject``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from wsmanager._checks import check_installed, check_runserver, installation_warnings

BIN = Path(sys.executable).parent


def ids(messages: list[object]) -> list[str]:
    return [str(getattr(m, "id", "")) for m in messages]


def test_installed_wsmanager_gives_no_w002() -> None:
    assert check_installed() == []
    assert installation_warnings() == []


def test_w002_when_wsmanager_is_not_installed() -> None:
    apps = ["django.contrib.auth", "django.contrib.contenttypes"]
    with override_settings(INSTALLED_APPS=apps):
        assert ids(check_installed()) == ["wsmanager.W002"]
        assert ids(installation_warnings()) == ["wsmanager.W002"]


@pytest.mark.parametrize(
    ("debug", "apps", "expected"),
    [
        (True, ["django.contrib.contenttypes"], ["wsmanager.W003"]),
        (True, ["daphne", "django.contrib.contenttypes"], []),
        (False, ["django.contrib.contenttypes"], []),  # no runserver in production
    ],
    ids=["debug-no-daphne", "debug-daphne", "production"],
)
def test_w003_when_runserver_would_not_serve_websockets(
    debug: bool, apps: list[str], expected: list[str]
) -> None:
    with override_settings(DEBUG=debug, INSTALLED_APPS=apps):
        assert ids(check_runserver()) == expected


# -- a real project -------------------------------------------------------------------------

HANDLERS = """
from wsmanager import RpcHandler, rpc


class PingHandler(RpcHandler):
    @rpc
    async def ping(self) -> str:
        return "pong"
"""

APPS = """
from django.apps import AppConfig


class NotesConfig(AppConfig):
    name = "notes"


class ImportingConfig(AppConfig):
    name = "notes"
    default = False

    def ready(self) -> None:
        from . import handlers  # noqa: F401  (e.g. to connect signal receivers)
"""

ASGI = """
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
django_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from notes.handlers import PingHandler  # noqa: E402
from wsmanager import route, websocket_app  # noqa: E402

websocket = websocket_app([route("ws/", PingHandler)])
application = ProtocolTypeRouter({"http": django_app, "websocket": websocket})
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``django-admin startproject mysite`` and ``startapp notes``, with a handler and an ASGI app."""
    root = tmp_path_factory.mktemp("project")
    env = clean_env()
    subprocess.run([str(BIN / "django-admin"), "startproject", "mysite", str(root)], check=True, env=env)
    subprocess.run([sys.executable, "manage.py", "startapp", "notes"], cwd=root, check=True, env=env)
    (root / "notes" / "handlers.py").write_text(HANDLERS)
    (root / "notes" / "apps.py").write_text(APPS)
    (root / "mysite" / "asgi.py").write_text(ASGI)
    yield root


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}


def settings_module(root: Path, name: str, apps: list[str], *, app_imports_wsmanager: bool) -> str:
    """A settings module of the project: the generated one, with these INSTALLED_APPS."""
    app = "notes.apps.ImportingConfig" if app_imports_wsmanager else "notes.apps.NotesConfig"
    body = f"""
        from .settings import *  # noqa: F403

        INSTALLED_APPS = {[*apps, app]!r}
        ASGI_APPLICATION = "mysite.asgi.application"
        CHANNEL_LAYERS = {{"default": {{"BACKEND": "channels.layers.InMemoryChannelLayer"}}}}
        """
    (root / "mysite" / f"{name}.py").write_text(textwrap.dedent(body))
    return f"mysite.{name}"


def manage_check(root: Path, settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", f"--settings={settings}"],
        cwd=root,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


DJANGO_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]


def test_manage_check_of_a_project_without_wsmanager_installed_warns_w002(project: Path) -> None:
    """The app imports its handlers at start-up: wsmanager's checks are registered and say
    what is missing (and the settings checks run too)."""
    settings = settings_module(project, "without_wsm", ["daphne", *DJANGO_APPS], app_imports_wsmanager=True)
    run = manage_check(project, settings)
    assert run.returncode == 0, run.stderr
    assert '?: (wsmanager.W002) "wsmanager" is not in INSTALLED_APPS' in run.stderr
    assert 'HINT: Add "wsmanager" to INSTALLED_APPS (docs/quickstart.md).' in run.stderr
    assert "wsmanager.W003" not in run.stderr


def test_manage_check_of_a_project_set_up_as_the_quickstart_says_is_clean(project: Path) -> None:
    settings = settings_module(
        project, "complete", ["daphne", *DJANGO_APPS, "wsmanager"], app_imports_wsmanager=True
    )
    run = manage_check(project, settings)
    assert run.returncode == 0, run.stderr
    assert "System check identified no issues (0 silenced)." in run.stdout
    assert "wsmanager" not in run.stderr


def test_manage_check_without_daphne_warns_that_runserver_serves_no_websockets(project: Path) -> None:
    settings = settings_module(project, "no_daphne", [*DJANGO_APPS, "wsmanager"], app_imports_wsmanager=False)
    run = manage_check(project, settings)
    assert run.returncode == 0, run.stderr
    assert '?: (wsmanager.W003) "daphne" is not in INSTALLED_APPS' in run.stderr
    assert "answers every WebSocket handshake with 404" in run.stderr


def test_when_check_never_imports_wsmanager_the_asgi_module_warns_instead(project: Path) -> None:
    """Nothing at start-up imports wsmanager: ``manage.py check`` cannot know (the
    documented limit); loading the ASGI module, as every server does, logs W002
    at WARNING, printed with no LOGGING configured."""
    settings = settings_module(project, "lazy", ["daphne", *DJANGO_APPS], app_imports_wsmanager=False)
    run = manage_check(project, settings)
    assert run.returncode == 0, run.stderr
    assert "wsmanager" not in run.stderr
    env = {**clean_env(), "DJANGO_SETTINGS_MODULE": settings}
    loaded = subprocess.run(
        [sys.executable, "-c", "import mysite.asgi"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert '"wsmanager" is not in INSTALLED_APPS' in loaded.stderr
    assert '(wsmanager.W002) Add "wsmanager" to INSTALLED_APPS' in loaded.stderr
