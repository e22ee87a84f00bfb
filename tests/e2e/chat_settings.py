"""Settings of the two chat apps of docs/from-channels.md (tests/e2e/from_channels_app.py
and tests/e2e/to_wsmanager_app.py): the bare settings, with the app's module as its
URLconf (``CHAT_URLCONF``)."""

import os

from tests.e2e.bare_settings import *  # noqa: F403

ROOT_URLCONF = os.environ.get("CHAT_URLCONF", "tests.e2e.from_channels_app")
