"""The demo's HTTP API guard (``demo_chat/views.py``) with DEBUG off: staff users and
the API token get in, everyone else gets a JSON 403. (The views themselves are
tested end to end in tests/e2e/test_demo_chat.py.)"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


@override_settings(DEBUG=False, DEMO_API_TOKEN="s3cret")
def test_with_debug_off_only_staff_or_the_token_may_use_the_api(client: Client) -> None:
    """Anonymous, a plain user and a wrong token: 403 JSON; a staff user or the token: served."""
    path = "/api/rooms/lobby/sockets"
    staff = User.objects.create_user("boss", password="pw", is_staff=True)
    plain = User.objects.create_user("joe", password="pw")

    refused = client.get(path)
    assert refused.status_code == 403
    assert refused.json() == {"error": "staff user or API token required"}
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get(path, headers={"Authorization": "s3cret"}).status_code == 403  # no scheme
    client.force_login(plain)
    assert client.get(path).status_code == 403

    client.force_login(staff)
    assert client.get(path).json() == []
    client.logout()
    served = client.get(path, headers={"Authorization": "Bearer s3cret"})
    assert (served.status_code, served.json()) == (200, [])


@override_settings(DEBUG=False, DEMO_API_TOKEN="")
def test_with_debug_off_and_no_token_set_an_empty_bearer_is_refused(client: Client) -> None:
    """An unset token never matches, not even an empty ``Bearer``."""
    assert client.get("/api/rooms/lobby/sockets", headers={"Authorization": "Bearer "}).status_code == 403
