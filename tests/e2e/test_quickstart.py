"""docs/quickstart.md, built as a newcomer would: a fresh ``django-admin startproject``
in an empty directory, the page's own blocks written into its files, the page's
commands run (``check``, ``makemigrations``, ``migrate``, the project's own
``pytest``), then the project served by ``runserver``, daphne and uvicorn (and two
uvicorn processes on Redis) to a real WebSocket client logged in by a session
cookie.

A fenced block whose first line is ``# <file>`` is written to that file;
``# <file>: replace INSTALLED_APPS`` replaces that assignment in it, ``# <file>:
add at the end`` appends to it, and ``# <file>: for several processes, add at the
end`` is the Redis variant (``mysite/settings_redis.py`` here: the settings, then
the block). The commands the test runs must appear in the page's ``sh`` blocks.
So the page and the test cannot drift apart.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import secrets
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import redis
import websockets

from tests import redis_support
from tests.e2e.client import Peer
from tests.once import built_once
from tests.servers import ROOT, ServerProcess, selected_kinds, server_process

pytestmark = pytest.mark.e2e
redis_url = redis_support.redis_url

DOC = ROOT / "docs" / "quickstart.md"
TESTING = ROOT / "docs" / "testing.md"
BIN = Path(sys.executable).parent
PASSWORD = "a-password-for-the-quickstart"
HEADER = re.compile(r"^# (?P<path>[\w./-]+\.(?:py|ini))(?:: (?P<how>.+))?$")
FENCE = re.compile(
    r"^(?P<indent> *)```(?P<lang>\w*)\n(?P<text>.*?)^(?P=indent)```$", re.MULTILINE | re.DOTALL
)


@dataclass(frozen=True)
class Block:
    lang: str
    text: str

    @property
    def header(self) -> re.Match[str] | None:
        return HEADER.match(self.text.partition("\n")[0])


def blocks(page: Path = DOC) -> list[Block]:
    """The fenced blocks of a page, in order (those indented in a list item dedented)."""
    return [Block(m["lang"], textwrap.dedent(m["text"])) for m in FENCE.finditer(page.read_text())]


def shell_lines(page: Path = DOC) -> list[str]:
    return [line.strip() for b in blocks(page) if b.lang == "sh" for line in b.text.splitlines()]


def file_blocks(page: Path = DOC) -> list[tuple[str, str | None, str]]:
    """(path, how, text) of every block of ``page`` naming a file; ``text`` is the whole
    block for a file written whole, the block without its first line otherwise."""
    found = []
    for block in blocks(page):
        header = block.header
        if header is not None:
            body = block.text.partition("\n")[2]
            found.append((header["path"], header["how"], block.text if header["how"] is None else body))
    return found


def documented(command: str) -> str:
    """``command`` as the page writes it; fails if the page does not."""
    assert command in shell_lines(), f"docs/quickstart.md no longer says {command!r}"
    return command


def clean_env(**extra: str) -> dict[str, str]:
    drop = ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTEST_ADDOPTS")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def run(root: Path, command: str, *more: str, env: dict[str, str] | None = None) -> str:
    """Run a documented shell command in the project (``python`` is this interpreter)."""
    argv = command.split()
    if argv[0] == "python":
        argv[0] = sys.executable
    elif argv[0] == "pytest":
        argv[:1] = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    else:
        argv[0] = str(BIN / argv[0])
    done = subprocess.run(
        [*argv, *more], cwd=root, env=env or clean_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def apply(root: Path, path: str, how: str | None, body: str) -> None:
    target = root / path
    if how is None:
        target.write_text(body)
    elif how == "replace INSTALLED_APPS":
        text = target.read_text()
        pattern = re.compile(r"^INSTALLED_APPS = \[\n.*?^\]\n", re.MULTILINE | re.DOTALL)
        assert pattern.search(text), "startproject's settings have no INSTALLED_APPS list"
        target.write_text(pattern.sub(lambda _: body, text, count=1))
    elif how == "add at the end":
        target.write_text(target.read_text() + "\n" + body)
    elif how == "for several processes, add at the end":
        (root / "mysite" / "settings_redis.py").write_text("from .settings import *  # noqa: F403\n\n" + body)
    else:
        raise AssertionError(f"docs/quickstart.md: unknown instruction {how!r} for {path}")


def build_project(root: Path) -> None:
    """The project of the page, built in the empty directory ``root`` and migrated, with the
    examples of docs/testing.md among its tests."""
    run(root, documented("django-admin startproject mysite ."))
    run(root, documented("python manage.py startapp notes"))
    for path, how, body in file_blocks():
        apply(root, path, how, body)
    for path, how, body in file_blocks(TESTING):
        if path == "pytest.ini":
            assert body == (root / path).read_text(), "the two pages show different pytest.ini files"
        apply(root, path, how, body)
    run(root, documented("python manage.py makemigrations notes"))
    run(root, documented("python manage.py migrate"))
    env = clean_env(DJANGO_SUPERUSER_PASSWORD=PASSWORD)
    documented("python manage.py createsuperuser")
    run(
        root,
        "python manage.py createsuperuser",
        "--noinput",
        "--username=alice",
        "--email=a@x.example",
        env=env,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the page's project (:func:`build_project`), which is built once per run:
    the module's groups (runserver, daphne, uvicorn) may run on several workers, and each
    serves and changes (notes, its database, test files) a copy of its own."""
    built = built_once(tmp_path_factory, "quickstart", build_project)
    root = tmp_path_factory.mktemp("quickstart")
    shutil.copytree(built, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_every_file_the_pages_name_is_a_known_instruction() -> None:
    """The pages' blocks: the files of the project, in the order the test writes them."""
    assert [(path, how) for path, how, _ in file_blocks()] == [
        ("mysite/settings.py", "replace INSTALLED_APPS"),
        ("mysite/settings.py", "add at the end"),
        ("notes/models.py", None),
        ("notes/handlers.py", None),
        ("mysite/asgi.py", None),
        ("notes/views.py", None),
        ("mysite/urls.py", None),
        ("try_it.py", None),
        ("pytest.ini", None),
        ("notes/test_notes.py", None),
        ("mysite/settings.py", "for several processes, add at the end"),
    ]
    assert [(path, how) for path, how, _ in file_blocks(TESTING)] == [
        ("pytest.ini", None),
        ("notes/conftest.py", None),
        ("notes/test_origins.py", None),
        ("notes/test_isolation.py", None),
    ]


def test_manage_check_finds_no_issue(project: Path) -> None:
    out = run(project, documented("python manage.py check"))
    assert "System check identified no issues (0 silenced)." in out


def test_the_projects_own_tests_pass(project: Path) -> None:
    """The pages' tests, run by pytest in the project: pytest-django, pytest-asyncio in
    auto mode, wsmanager's plugin, ``django_db(transaction=True)``."""
    out = run(project, documented("pytest"), "-q")
    assert "8 passed" in out, out
    assert "pytest-django pytest-asyncio" in " ".join(shell_lines(TESTING))


def test_with_a_plain_django_db_marker_the_handlers_writes_leak_into_the_next_test(project: Path) -> None:
    """What docs/testing.md says of a plain ``django_db``: the same two tests, marked so, fail."""
    isolation = (project / "notes" / "test_isolation.py").read_text()
    marker = "pytestmark = pytest.mark.django_db(transaction=True)"
    assert marker in isolation
    plain = project / "notes" / "test_plain_marker.py"
    plain.write_text(isolation.replace(marker, "pytestmark = pytest.mark.django_db"))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(plain)],
            cwd=project,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        plain.unlink()
    assert "1 failed, 1 passed" in done.stdout, done.stdout + done.stderr
    assert "test_the_next_test_starts_with_no_notes" in done.stdout


ON_REDIS = """
import os
from pathlib import Path

import pytest

from mysite.asgi import application
from wsmanager.registry import get_registry
from wsmanager.testing import RpcCommunicator

pytestmark = pytest.mark.django_db(transaction=True)


async def test_the_fixture_puts_the_registry_on_redis(on_redis, django_user_model):
    gus = await django_user_model.objects.acreate(username="gus")
    async with RpcCommunicator(application, "/ws/notes/", user=gus) as client:
        registry = get_registry()
        assert type(registry).__name__ == "RedisRegistry"
        assert await registry.get("notes", client.id) is not None
        Path(os.environ["PREFIX_FILE"]).write_text(registry.prefix)
"""


@pytest.mark.redis
def test_the_redis_fixture_of_the_testing_page_runs_and_clears_its_keys(
    project: Path, redis_url: str, tmp_path: Path
) -> None:
    if redis_url != redis_support.DEFAULT_REDIS_URL:
        pytest.skip("docs/testing.md's fixture names the default test Redis, 127.0.0.1:6379/15")
    test = project / "notes" / "test_on_redis.py"
    test.write_text(ON_REDIS)
    prefix_file = tmp_path / "prefix"
    try:
        out = run(project, "pytest", "-q", str(test), env=clean_env(PREFIX_FILE=str(prefix_file)))
    finally:
        test.unlink()
    assert "1 passed" in out, out
    client: Any = redis.Redis.from_url(redis_url)
    try:
        prefix = prefix_file.read_text()
        for pattern in (f"{prefix}:*", f"{{{prefix}}}:*"):  # areset() cleared them
            assert list(client.scan_iter(match=pattern)) == []
    finally:
        client.close()


# -- served -------------------------------------------------------------------------------


class RunserverProcess(ServerProcess):
    """``python manage.py runserver`` of the project (daphne's, without the autoreloader)."""

    kind = "runserver"
    manage: ClassVar[Path]

    def command(self) -> list[str]:
        return [sys.executable, str(self.manage), "runserver", f"127.0.0.1:{self.port}", "--noreload"]


def served_kinds() -> list[str]:
    """runserver (daphne's), daphne and uvicorn, as far as WSMANAGER_TEST_SERVERS selects them."""
    kinds = [kind for kind in ("daphne", "uvicorn") if kind in selected_kinds()]
    return ["runserver", *kinds] if "daphne" in kinds else kinds


def serve(project: Path, kind: str, settings: str = "mysite.settings", **env: str) -> ServerProcess:
    environment = {"PYTHONPATH": str(project), "DJANGO_SETTINGS_MODULE": settings, **env}
    if kind == "runserver":
        RunserverProcess.manage = project / "manage.py"
        documented("python manage.py runserver")
        return RunserverProcess(env=environment)
    documented(f"{kind} mysite.asgi:application")
    return server_process(kind, app="mysite.asgi:application", env=environment)


@pytest.fixture(scope="module", params=served_kinds())
def server(request: pytest.FixtureRequest, project: Path) -> Iterator[ServerProcess]:
    proc = serve(project, request.param)
    proc.start()
    yield proc
    proc.stop()


async def log_in(web: httpx.AsyncClient) -> str:
    """Log alice in through the admin's login form, as a browser does; her session key."""
    page = await web.get("/admin/login/")
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    form = {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": match[1], "next": "/admin/"}
    done = await web.post("/admin/login/?next=/admin/", data=form)
    assert done.status_code == 302, done.text[:500]
    return str(web.cookies["sessionid"])


@pytest.fixture
async def web(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        yield client


async def peer(server: ServerProcess, session: str | None) -> Peer:
    headers = {"Cookie": f"sessionid={session}"} if session else {}
    origin = f"http://127.0.0.1:{server.port}"
    return await Peer.open(f"{server.ws_url}/ws/notes/", origin=origin, additional_headers=headers)


async def test_the_pages_script_adds_a_note_with_the_session_cookie(
    server: ServerProcess, web: httpx.AsyncClient, project: Path
) -> None:
    """try_it.py, as the page says to run it, against the real server."""
    session = await log_in(web)
    assert "python try_it.py <the sessionid value>" in shell_lines()
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "try_it.py", session, str(server.port)],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    hello, answer = (ast.literal_eval(line) for line in done.stdout.splitlines())
    assert hello["method"] == "rpc.connected"
    assert answer["id"] == 1 and answer["result"]["text"] == "buy milk"


async def test_a_saved_note_reaches_the_users_socket_after_the_commit(
    server: ServerProcess, web: httpx.AsyncClient
) -> None:
    """The view of section 5 on a real server: its ``on_commit`` notifies the open socket."""
    session = await log_in(web)
    client = await peer(server, session)
    first = await client.call("add", "from the socket")
    assert first in await client.call("mine")
    response = await web.post(
        "/notes/", data={"text": "from the web"}, headers={"X-CSRFToken": web.cookies["csrftoken"]}
    )
    assert response.status_code == 201, response.text[:500]
    note = await client.notification("note_added")
    assert note["params"] == response.json()
    await client.close()


async def test_without_the_cookie_the_handshake_is_refused_and_the_log_says_why(
    server: ServerProcess,
) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await peer(server, None)
    assert refused.value.response.status_code == 403
    if server.kind == "uvicorn":
        assert bytes(refused.value.response.body or b"") == b"authentication required\n"
    line = "wsmanager refused a WebSocket handshake to '/ws/notes/' (notes) with HTTP 403: "
    line += "authentication required"
    assert line in DOC.read_text()
    deadline = time.monotonic() + 10
    while line not in server.log_text():
        assert time.monotonic() < deadline, server.log_tail()
        await asyncio.sleep(0.05)


@pytest.mark.redis
async def test_on_redis_a_note_saved_by_one_process_reaches_a_socket_on_another(
    project: Path, redis_url: str
) -> None:
    """Section 8: two uvicorn processes with the Redis settings; the view runs on one,
    the user's socket is open on the other."""
    documented("uvicorn mysite.asgi:application --workers 4")
    prefix = f"qs-{secrets.token_hex(6)}"
    env = {"REDIS_URL": redis_url, "REDIS_PREFIX": prefix}
    a = serve(project, "uvicorn", "mysite.settings_redis", **env)
    b = serve(project, "uvicorn", "mysite.settings_redis", **env)
    try:
        a.start()
        b.start()
        async with httpx.AsyncClient(base_url=b.http_url, timeout=10) as web:
            session = await log_in(web)
            client = await peer(a, session)
            token = web.cookies["csrftoken"]
            response = await web.post("/notes/", data={"text": "across"}, headers={"X-CSRFToken": token})
            assert response.status_code == 201, response.text[:500]
            note = await client.notification("note_added")
            assert note["params"] == response.json()
            await client.close()
    finally:
        a.stop()
        b.stop()
        forget_keys(redis_url, prefix)


def forget_keys(url: str, prefix: str) -> None:
    client: Any = redis.Redis.from_url(url)
    try:
        keys = [key for pattern in (f"{prefix}:*", f"{{{prefix}*") for key in client.scan_iter(match=pattern)]
        if keys:
            client.delete(*keys)
    finally:
        client.close()
