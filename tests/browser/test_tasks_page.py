"""The demo's /tasks/ page in Chromium against the real server: the list stays live and a reload
loses nothing, whoever changes the tasks (the page itself, the HTTP API, the admin, the ORM in
another process).

The server is daphne on a migrated SQLite file and Redis (its own key prefix), so that a
`manage.py shell` in another process publishes to the page's socket, and the topic's history
lives in Redis.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis

from tests import redis_support
from tests.e2e.client import cluster_env, running
from tests.servers import ROOT, DaphneProcess

from .tcp_proxy import TcpProxy

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.redis]

redis_url = redis_support.redis_url

PASSWORD = "tasks-page-password"
# Short retries and a heartbeat that notices a dead socket quickly; nothing depends on them.
QUERY = "?reconnectDelay=50&reconnectMaxDelay=200"


def manage(env: dict[str, str], *args: str) -> str:
    run = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return run.stdout


@pytest.fixture(scope="module")
def site(redis_url: str) -> Iterator[tuple[DaphneProcess, dict[str, str]]]:
    """daphne serving the demo on a fresh database (with a superuser) and Redis; and its environment."""
    db = Path(tempfile.mkdtemp(prefix="wsm-tasks-")) / "db.sqlite3"
    env = {
        **os.environ,
        **cluster_env(redis_url, DEMO_DB=str(db), DJANGO_SETTINGS_MODULE="demo_chat.settings"),
    }
    manage(env, "migrate", "--noinput")
    manage(
        {**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
        *("createsuperuser", "--noinput", "--username", "root", "--email", "root@example.com"),
    )
    server = DaphneProcess(env=env).start()
    yield server, env
    server.stop()
    shutil.rmtree(db.parent)
    clear_redis(redis_url, env["WSMANAGER_REDIS_PREFIX"])


def clear_redis(url: str, prefix: str) -> None:
    """Delete the keys of a test's prefix (never FLUSHDB: Redis is shared)."""
    connection = redis.Redis.from_url(url)
    for pattern in (f"{prefix}:*", f"{{{prefix}*"):  # and the registry's keys, its prefix in braces
        for key in connection.scan_iter(match=pattern):
            connection.delete(key)
    connection.close()


@pytest.fixture
def server(site: tuple[DaphneProcess, dict[str, str]]) -> DaphneProcess:
    return site[0]


@pytest.fixture
def api(server: DaphneProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=10) as client:
        yield client


def server_tasks(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get("/api/tasks")
    assert response.status_code == 200, response.text
    return list(response.json()["tasks"])


def open_tasks(new_page: Callable[[], Page], server: DaphneProcess) -> Page:
    page = new_page()
    page.goto(f"{server.http_url}/tasks/{QUERY}")
    page.wait_for_function("window.demoTasks && window.demoTasks.subscription?.active")
    return page


def shown(page: Page) -> list[dict[str, Any]]:
    """The tasks the page shows, read from the DOM."""
    return list(
        page.evaluate(
            """() => Array.from(document.querySelectorAll("[data-testid=task]")).map((li) => ({
                id: Number(li.dataset.id),
                title: li.querySelector("[data-testid=task-title]").textContent,
                done: li.querySelector("[data-testid=task-done]").checked,
            }))"""
        )
    )


def wait_shown(page: Page, expected: list[dict[str, Any]]) -> None:
    """Wait until the page shows exactly ``expected`` (bounded by the page's default timeout)."""
    page.wait_for_function(
        """(expected) => {
            const rows = Array.from(document.querySelectorAll("[data-testid=task]")).map((li) => ({
                id: Number(li.dataset.id),
                title: li.querySelector("[data-testid=task-title]").textContent,
                done: li.querySelector("[data-testid=task-done]").checked,
            }));
            return JSON.stringify(rows) === JSON.stringify(expected);
        }""",
        arg=expected,
    )


def clear(api: httpx.Client) -> None:
    for task in server_tasks(api):
        assert api.delete(f"/api/tasks/{task['id']}").status_code == 204


def admin_session(server: DaphneProcess) -> httpx.Client:
    client = httpx.Client(base_url=server.http_url, timeout=10)
    form = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token is not None
    data = {"username": "root", "password": PASSWORD, "csrfmiddlewaretoken": token[1], "next": "/admin/"}
    assert client.post("/admin/login/?next=/admin/", data=data).status_code == 302
    return client


def admin_edit(server: DaphneProcess, task_id: int, title: str, done: bool) -> None:
    """Change a task through the admin's change form, as a person would."""
    client = admin_session(server)
    try:
        url = f"/admin/demo_chat/task/{task_id}/change/"
        form = client.get(url)
        assert form.status_code == 200, form.text[:500]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token is not None
        data = {"csrfmiddlewaretoken": token[1], "title": title, "_save": "Save"}
        if done:
            data["done"] = "on"
        response = client.post(url, data=data)
        assert response.status_code == 302, response.text[:2000]
    finally:
        client.close()


def test_every_change_reaches_two_pages_wherever_it_is_made(
    new_page: Callable[[], Page], server: DaphneProcess, api: httpx.Client, site: Any
) -> None:
    """The page's own form, checkbox and delete button; the HTTP API; the admin; the ORM in
    another process: two open pages show each change, the same way, in step with the server."""
    clear(api)
    first, second = open_tasks(new_page, server), open_tasks(new_page, server)
    wait_shown(first, [])

    first.get_by_test_id("title-input").fill("milk")
    first.get_by_test_id("add-button").click()
    first.wait_for_function("document.querySelectorAll('[data-testid=task]').length === 1")
    (milk,) = server_tasks(api)
    for page in (first, second):
        wait_shown(page, [{"id": milk["id"], "title": "milk", "done": False}])

    second.get_by_test_id("task-done").first.click()
    for page in (first, second):
        wait_shown(page, [{"id": milk["id"], "title": "milk", "done": True}])

    created = api.post("/api/tasks/bulk", json={"titles": ["bread", "eggs", "tea"]})
    assert created.status_code == 201, created.text
    bread, eggs, tea = (t["id"] for t in created.json()["tasks"])
    admin_edit(server, eggs, "brown eggs", True)
    env = site[1]
    orm = (
        "from demo_chat.models import Task;"
        f"Task.objects.filter(pk={bread}).get().delete();"
        "print(Task.objects.create(title='from a shell').pk)"
    )
    shell = int(manage(env, "shell", "-c", orm).split()[-1])
    first.locator(f"[data-testid=task][data-id='{tea}'] [data-testid=task-delete]").click()

    expected = [
        {"id": milk["id"], "title": "milk", "done": True},
        {"id": eggs, "title": "brown eggs", "done": True},
        {"id": shell, "title": "from a shell", "done": False},
    ]
    for page in (first, second):
        wait_shown(page, expected)  # a page changes on the publication: after the commit
        log = page.evaluate("window.demoTasks.log")
        assert [e for e in log if e["type"] == "unrecovered"] == []
    assert server_tasks(api) == expected


def test_reloads_while_tasks_change_lose_nothing(
    new_page: Callable[[], Page], server: DaphneProcess, api: httpx.Client, site: Any
) -> None:
    """A writer creates, ticks and deletes tasks through the HTTP API without pause while one page
    reloads again and again (and the ORM changes some from another process); a second page
    never reloads. At the end both show exactly the server's list, and neither had to refetch:
    each reload subscribed from the position its list was read at and got the rest replayed."""
    clear(api)
    steady = open_tasks(new_page, server)
    reloaded = open_tasks(new_page, server)
    stop = threading.Event()
    failures: list[str] = []
    changes = {"count": 0}

    def writer() -> None:
        with httpx.Client(base_url=server.http_url, timeout=10) as client:
            n = 0
            while not stop.is_set():
                n += 1
                made = client.post("/api/tasks", json={"title": f"task {n}"})
                if made.status_code != 201:
                    failures.append(f"POST {made.status_code} {made.text}")
                    return
                task_id = made.json()["id"]
                if n % 2 == 0:
                    client.patch(f"/api/tasks/{task_id}", json={"done": True})
                if n % 3 == 0:
                    client.delete(f"/api/tasks/{task_id}")
                changes["count"] = n

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        env = site[1]
        for round_ in range(4):
            before = changes["count"]
            reloaded.reload()
            reloaded.wait_for_function("window.demoTasks && window.demoTasks.subscription")
            if round_ == 1:
                orm = "from demo_chat.models import Task; Task.objects.create(title='orm')"
                manage(env, "shell", "-c", orm)
            # The writer made changes while this page was away: wait for more before reloading again.
            steady.wait_for_function(
                "n => window.demoTasks.log.filter(e => e.type === 'publication').length > n",
                arg=before + 3,
            )
    finally:
        stop.set()
        thread.join(10)
    assert failures == []
    assert changes["count"] >= 4
    expected = server_tasks(api)
    for page in (steady, reloaded):
        wait_shown(page, expected)
        assert [e for e in page.evaluate("window.demoTasks.log") if e["type"] == "unrecovered"] == []
    assert any(t["title"] == "orm" for t in expected)


def test_a_reloaded_client_subscribes_from_its_stored_position(
    new_page: Callable[[], Page], server: DaphneProcess, api: httpx.Client
) -> None:
    """Without `since`, the client's own sessionStorage position brings a reloaded page exactly
    the publications it missed, once and in order (what the /tasks/ page does with its fetched
    list, the client does by itself for any page)."""
    page = new_page()
    # A page of the demo's origin with the client library and no client of its own (the chat
    # page before joining): the /tasks/ page's own client would keep the same position key.
    page.goto(f"{server.http_url}/")
    subscribe = """async () => {
        window.got = [];
        const client = new wsmanager.Client("/ws/live/");
        client.connect();
        const sub = await client.subscribe(
            "tasks", (p) => window.got.push([p.offset, p.event, p.data.title]));
        return sub.position;
    }"""
    before = page.evaluate(subscribe)
    titles = [f"missed {n}" for n in range(5)]
    page.goto("about:blank")  # the page is gone: its client closes on purpose
    for title in titles:
        assert api.post("/api/tasks", json={"title": title}).status_code == 201
    page.goto(f"{server.http_url}/")
    after = page.evaluate(subscribe)
    page.wait_for_function("n => window.got.length >= n", arg=len(titles))
    got = page.evaluate("window.got")
    assert got == [[before["offset"] + 1 + n, "created", title] for n, title in enumerate(titles)]
    assert after == {"offset": before["offset"] + len(titles), "epoch": before["epoch"]}


def test_a_page_whose_server_is_killed_catches_up_or_refetches(
    new_page: Callable[[], Page], site: Any, redis_url: str
) -> None:
    """The page's server process is SIGKILLed while another process changes tasks, then starts
    again on the same port. Within the topic's history (5 here) the page catches up from its
    position by itself; past it the server answers `recovered: false` and the page reads the
    list again. Either way it shows exactly the server's list."""
    env = {
        **site[1],
        **cluster_env(
            redis_url,
            DEMO_DB=site[1]["DEMO_DB"],
            DJANGO_SETTINGS_MODULE="demo_chat.settings",
            DEMO_TOPIC_HISTORY_SIZE="5",
        ),
    }
    restarted: list[DaphneProcess] = []
    try:
        with (
            running([DaphneProcess(env=env), DaphneProcess(env=env)]) as (a, b),
            httpx.Client(base_url=b.http_url, timeout=10) as api,
        ):
            clear(api)
            page = open_tasks(new_page, a)
            wait_shown(page, [])

            a.kill()
            for n in range(3):
                assert api.post("/api/tasks", json={"title": f"away {n}"}).status_code == 201
            restarted.append(DaphneProcess(port=a.port, env=env).start())
            wait_shown(page, server_tasks(api))
            assert [e for e in page.evaluate("window.demoTasks.log") if e["type"] == "unrecovered"] == []

            restarted[-1].kill()
            for n in range(7):
                assert api.post("/api/tasks", json={"title": f"long away {n}"}).status_code == 201
            restarted.append(DaphneProcess(port=a.port, env=env).start())
            wait_shown(page, server_tasks(api))
            log = page.evaluate("window.demoTasks.log")
            assert [e["reason"] for e in log if e["type"] == "unrecovered"] == ["history"]
            assert [e["type"] for e in log].count("fetched") == 2
    finally:
        for server in restarted:
            server.stop()
        clear_redis(redis_url, env["WSMANAGER_REDIS_PREFIX"])


def test_a_page_cut_from_the_network_catches_up_by_itself(
    new_page: Callable[[], Page], server: DaphneProcess, api: httpx.Client
) -> None:
    """The page's connection is reset (no close frame) and its retries refused while tasks change;
    when the network is back, the client subscribes again from its position and the server replays
    the rest: each offset applied once, in order, and no refetch. (The demo's live socket has no
    connection recovery: this is the topic's own catching up.)"""
    proxy = TcpProxy(server.port).start()
    try:
        clear(api)
        page = new_page()
        page.goto(f"{proxy.http_url}/tasks/?reconnectDelay=300&reconnectMaxDelay=300")
        page.wait_for_function("window.demoTasks && window.demoTasks.subscription?.active")
        assert api.post("/api/tasks", json={"title": "before"}).status_code == 201
        wait_shown(page, server_tasks(api))

        assert proxy.cut() >= 2
        proxy.wait_refused(1)
        for n in range(3):
            assert api.post("/api/tasks", json={"title": f"missed {n}"}).status_code == 201
        proxy.admit()
        wait_shown(page, server_tasks(api))
        log = page.evaluate("window.demoTasks.log")
        offsets = [e["offset"] for e in log if e["type"] == "publication"]
        assert offsets == sorted(set(offsets))  # each once, in order
        assert [e for e in log if e["type"] == "unrecovered"] == []
        assert [e["type"] for e in log].count("fetched") == 1
    finally:
        proxy.stop()


def test_a_logged_in_users_page_hears_its_own_notices(
    new_page: Callable[[], Page], server: DaphneProcess, api: httpx.Client
) -> None:
    """A logged-in user's page subscribes to user.<id> too (the server lets only that user):
    what the user's session does through the API comes back as a notice; an anonymous page
    has no such subscription."""
    clear(api)
    page = new_page()
    page.goto(f"{server.http_url}/admin/login/?next=/tasks/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{server.http_url}/tasks/")
    page.wait_for_function("window.demoTasks && window.demoTasks.notices?.active")
    topic = page.evaluate("window.demoTasks.notices.topic")
    assert re.fullmatch(r"user\.\d+", topic)

    page.get_by_test_id("title-input").fill("mine")
    page.get_by_test_id("add-button").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=user-notice]').length === 1")
    (task,) = server_tasks(api)
    assert page.get_by_test_id("user-notice").text_content() == f"you created task {task['id']}"

    anonymous = open_tasks(new_page, server)
    assert anonymous.evaluate("window.demoTasks.notices") is None
    assert anonymous.evaluate("document.getElementById('notices-box').hidden") is True


def test_replaying_the_history_streams_the_kept_changes_in_order(
    new_page: Callable[[], Page], server: DaphneProcess, api: httpx.Client
) -> None:
    """ "Replay the history" streams the topic's kept changes (the method ``changes``, an async
    generator on the server) into the page's list, oldest first, ending with what was just done."""
    clear(api)
    created = api.post("/api/tasks", json={"title": "history one"})
    assert created.status_code == 201, created.text
    task = created.json()
    assert api.patch(f"/api/tasks/{task['id']}", json={"done": True}).status_code == 200
    page = open_tasks(new_page, server)
    page.get_by_test_id("history-button").click()
    page.wait_for_function(
        "document.querySelector('[data-testid=history-status]').textContent.endsWith(' changes')"
    )
    items = page.evaluate(
        "() => Array.from(document.querySelectorAll('[data-testid=history-item]'), (li) => li.textContent)"
    )
    offsets = [int(re.match(r"#(\d+) ", text).group(1)) for text in items]  # type: ignore[union-attr]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert items[-2:] == [f"#{offsets[-2]} created: history one", f"#{offsets[-1]} updated: history one"]
    status = page.get_by_test_id("history-status").text_content()
    assert status == f"{len(items)} changes"
