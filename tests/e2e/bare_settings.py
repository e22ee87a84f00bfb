"""A project's settings as a newcomer writes them: no ``LOGGING`` at all (Django's
default logging), the in-memory layer, sessions and auth. The refusal tests run
under it, to see what each server prints with nothing configured."""

SECRET_KEY = "tests-only-bare-settings-0123456789abcdef0123456789"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "wsmanager",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
USE_TZ = True
