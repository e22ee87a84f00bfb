"""The demo (``demo_chat.asgi:application``) with its token buckets on a clock the tests
move (tests/e2e/stopped_clock.py): ``daphne tests.e2e.clocked_demo:application``."""

from __future__ import annotations

from demo_chat.asgi import application as demo_application
from tests.e2e.stopped_clock import install, with_clock

install()
application = with_clock(demo_application)
