"""Settings for the test suite: the demo's settings, with test-only handlers routed."""

from demo_chat import settings as demo
from demo_chat.settings import *  # noqa: F403

# The demo lists daphne's app for manage.py only; the suite runs checks and commands
# (wsmanager.W003, daphne.E001 once daphne's checks are imported) as manage.py would.
INSTALLED_APPS = [*(["daphne"] if "daphne" not in demo.INSTALLED_APPS else []), *demo.INSTALLED_APPS]

ROOT_URLCONF = "demo_chat.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# pytest-django turns DEBUG off; the demo refuses its public placeholder key
# then (demo_chat.E001), so the tests use a key of their own.
SECRET_KEY = "tests-only-secret-key-not-the-demo-placeholder-0123456789abcdef"
