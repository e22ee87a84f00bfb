"""Settings for the test suite: the demo's settings, with test-only handlers routed."""

from demo_chat.settings import *  # noqa: F403

ROOT_URLCONF = "demo_chat.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
