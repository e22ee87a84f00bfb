"""The demo's HTTP API guard (``demo_chat/access.py``, ``demo_chat/views.py``) and its
start-up check (``demo_chat/checks.py``), with Django's test client, and the tests' fast
password hasher (``DEMO_PASSWORD_HASHER``, ``demo_chat/settings.py``). (The views are
tested end to end in tests/e2e/test_demo_chat.py and tests/e2e/test_demo_api_access.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management.base import SystemCheckError
from django.test import Client, override_settings

from demo_chat import views
from demo_chat.access import REFUSED
from demo_chat.checks import placeholder_secret_key, refuse_serious_problems
from demo_chat.settings import PLACEHOLDER_SECRET_KEY
from wsmanager import ConnectionClosed, DeliveryError, InvokeError, RegistryUnavailable

pytestmark = pytest.mark.django_db


def operator(username: str = "boss") -> User:
    """A staff user with the admin's permission on live connections."""
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="manage_connections"))
    return user


SOCKETS = "/api/rooms/lobby/sockets"
MESSAGES = "/api/rooms/lobby/messages"


@override_settings(DEBUG=False, DEMO_API_TOKEN="s3cret")
def test_with_debug_off_only_staff_or_the_token_may_use_the_api(client: Client) -> None:
    """Anonymous, a plain user, staff without the admin's permission and a wrong token: 403 JSON;
    staff with the permission, a superuser or the token: served."""
    staff = operator()
    plain = User.objects.create_user("joe", password="pw")
    clerk = User.objects.create_user("clerk", password="pw", is_staff=True)

    refused = client.get(SOCKETS)
    assert refused.status_code == 403
    assert refused.json() == {"error": REFUSED}
    assert client.get(SOCKETS, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get(SOCKETS, headers={"Authorization": "s3cret"}).status_code == 403  # no scheme
    assert client.get(SOCKETS, headers={"Authorization": "Basic czNjcmV0"}).status_code == 403
    client.force_login(plain)
    assert client.get(SOCKETS).status_code == 403
    client.force_login(clerk)
    assert (client.get(SOCKETS).status_code, client.get(SOCKETS).json()) == (403, {"error": REFUSED})
    client.force_login(User.objects.create_superuser("root", password="pw"))
    assert client.get(SOCKETS).status_code == 200

    client.force_login(staff)
    assert client.get(SOCKETS).json() == []
    client.logout()
    served = client.get(SOCKETS, headers={"Authorization": "Bearer s3cret"})
    assert (served.status_code, served.json()) == (200, [])
    assert client.get(SOCKETS, headers={"Authorization": "bearer  s3cret"}).status_code == 200


@override_settings(DEBUG=False, DEMO_API_TOKEN="")
def test_with_debug_off_and_no_token_set_no_bearer_is_accepted(client: Client) -> None:
    """An unset token never matches; an empty ``Bearer`` is malformed (400)."""
    assert client.get(SOCKETS, headers={"Authorization": "Bearer x"}).status_code == 403
    empty = client.get(SOCKETS, headers={"Authorization": "Bearer "})
    assert empty.status_code == 400
    assert "Authorization" in empty.json()["error"]


@override_settings(DEBUG=False, DEMO_API_TOKEN="tök")
def test_a_non_ascii_setting_is_compared_as_bytes_and_never_crashes(client: Client) -> None:
    """A token setting outside ASCII cannot be sent (not a token68), and comparing it does not raise."""
    assert client.get(SOCKETS, headers={"Authorization": "Bearer tok"}).status_code == 403
    assert client.get(SOCKETS, headers={"Authorization": "Bearer tök"}).status_code == 400


@pytest.mark.parametrize("debug", [False, True])
def test_a_staff_session_must_pass_django_csrf_check(debug: bool) -> None:
    """A cookie-authenticated POST without the CSRF token: JSON 403; with it: served."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator())
    with override_settings(DEBUG=debug, DEMO_API_TOKEN="s3cret"):
        forged = client.post(MESSAGES, "{}", content_type="text/plain")
        assert forged.status_code == 403
        assert forged.json()["error"].startswith("CSRF check failed: CSRF cookie not set")
        client.get("/")  # the page sets the csrftoken cookie
        token = client.cookies["csrftoken"].value
        wrong_site = client.post(
            MESSAGES,
            {"text": "x"},
            "application/json",
            headers={"X-CSRFToken": token, "Origin": "http://evil.example"},
        )
        assert wrong_site.status_code == 403
        assert "Origin checking failed" in wrong_site.json()["error"]
        sent = client.post(MESSAGES, {"text": "x"}, "application/json", headers={"X-CSRFToken": token})
        assert (sent.status_code, sent.json()) == (202, {"delivered": 0})


@override_settings(DEBUG=False, DEMO_API_TOKEN="s3cret")
def test_the_token_is_exempt_from_csrf_even_beside_a_session_cookie() -> None:
    """A valid Bearer token needs no CSRF token, whether or not a session cookie rides along."""
    client = Client(enforce_csrf_checks=True)
    auth = {"Authorization": "Bearer s3cret"}
    assert client.post(MESSAGES, {"text": "x"}, "application/json", headers=auth).status_code == 202
    client.force_login(operator())
    assert client.post(MESSAGES, {"text": "x"}, "application/json", headers=auth).status_code == 202


@override_settings(DEBUG=True)
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 202),
        ({"Origin": "http://testserver"}, 202),
        ({"Sec-Fetch-Site": "same-origin"}, 202),
        ({"Sec-Fetch-Site": "none"}, 202),
        ({"Origin": "https://testserver"}, 403),  # another scheme: another origin
        ({"Origin": "http://testserver:8080"}, 403),
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Sec-Fetch-Site": "same-site"}, 403),
        ({"Sec-Fetch-Site": "cross-site", "Authorization": "Bearer s3cret"}, 202),  # the token
    ],
)
def test_with_debug_on_the_api_refuses_other_sites_pages(
    client: Client, headers: dict[str, str], status: int
) -> None:
    """DEBUG on: open to scripts and the demo's own pages; other origins get a JSON 403."""
    with override_settings(DEMO_API_TOKEN="s3cret"):
        response = client.post(MESSAGES, {"text": "x"}, "application/json", headers=headers)
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"].startswith("cross-origin request refused")


def test_503_bodies_name_the_failed_part_and_nothing_internal() -> None:
    """Each failure class answers its fixed message; the exception's text stays in the log."""
    secret = "redis://10.0.0.7:6379/0"
    for exc, text in [
        (
            RegistryUnavailable(f"Redis registry at {secret} unavailable"),
            "the socket registry is unavailable",
        ),
        (DeliveryError(f"layer at {secret} refused"), "the channel layer is unavailable"),
        (ConnectionClosed("abc"), "the socket closed before answering"),
        (InvokeError("abc", "m", f"ConnectionError: {secret}"), "the call failed in the socket's process"),
    ]:
        response = views.unavailable(exc)
        assert response.status_code == 503
        assert response.content.decode() == f'{{"error": "{text}"}}'


def test_with_debug_off_the_placeholder_secret_key_is_a_check_error() -> None:
    """demo_chat.E001 with DEBUG off and the placeholder; nothing with DEBUG on or another key."""
    with override_settings(DEBUG=False, SECRET_KEY=PLACEHOLDER_SECRET_KEY):
        assert [m.id for m in placeholder_secret_key()] == ["demo_chat.E001"]
        with pytest.raises(SystemCheckError, match=r"demo_chat\.E001"):
            refuse_serious_problems()
    with override_settings(DEBUG=True, SECRET_KEY=PLACEHOLDER_SECRET_KEY):
        assert placeholder_secret_key() == []
    with override_settings(DEBUG=False, SECRET_KEY="another-long-random-value"):
        assert placeholder_secret_key() == []
        refuse_serious_problems()


def hashers_of_demo(hasher: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "DEMO_PASSWORD_HASHER"}
    if hasher is not None:
        env["DEMO_PASSWORD_HASHER"] = hasher
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(' '.join(settings.PASSWORD_HASHERS))"
    )
    env["DJANGO_SETTINGS_MODULE"] = "demo_chat.settings"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


def test_the_demo_hashes_with_pbkdf2_unless_the_tests_fast_hasher_is_asked_for() -> None:
    assert hashers_of_demo(None)[0] == "django.contrib.auth.hashers.PBKDF2PasswordHasher"
    assert hashers_of_demo("")[0] == "django.contrib.auth.hashers.PBKDF2PasswordHasher"
    assert hashers_of_demo("md5") == ["django.contrib.auth.hashers.MD5PasswordHasher"]
