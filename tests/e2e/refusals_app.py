"""Handlers that refuse, for tests/e2e/test_refusals_e2e.py: an origin check (the
site's ``ALLOWED_HOSTS``: 127.0.0.1) and ``require_authenticated``; served with the
bare settings (no ``LOGGING``)."""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.e2e.bare_settings")
django.setup()

from wsmanager import RpcHandler, route, websocket_app  # noqa: E402


class OpenHandler(RpcHandler):
    handler_name = "e2e.refusals.open"


class MembersHandler(RpcHandler):
    handler_name = "e2e.refusals.members"
    require_authenticated = True


application = websocket_app([route("ws/open/", OpenHandler), route("ws/members/", MembersHandler)])
