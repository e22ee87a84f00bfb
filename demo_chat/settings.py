"""Settings of the demo chat: SQLite, the in-memory channel layer and registry.

Set ``REDIS_URL`` (e.g. ``redis://127.0.0.1:6379/0``) to switch the channel
layer and the wsmanager registry to Redis, for several server processes; a
``redis+sentinel://host:port,host:port/<service>/<db>`` URL finds the primary
through Redis Sentinel, a ``redis+cluster://host:port,host:port`` URL uses a
Redis Cluster (docs/scaling.md).
"""

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

#: The demo's fixed key, for a laptop with DEBUG on; with DEBUG off start-up refuses it
#: (system check demo_chat.E001, demo_chat/checks.py): set DJANGO_SECRET_KEY.
PLACEHOLDER_SECRET_KEY = "demo-only-not-secret-change-me"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", PLACEHOLDER_SECRET_KEY)
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

#: daphne's app is what makes ``manage.py runserver`` serve WebSockets (``make demo``). It
#: also loads Twisted when Django starts, which a process served by uvicorn, hypercorn,
#: granian or daphne's own command never uses: a third of such a process's start-up
#: (0.2 s of 0.6 s under uvicorn) and its memory. So it is there for management commands
#: (runserver, and check and migrate, which would warn wsmanager.W003 without it) only.
MANAGEMENT = Path(sys.argv[0]).name in {"manage.py", "django-admin"}

INSTALLED_APPS = [
    *(["daphne"] if MANAGEMENT else []),
    "django.contrib.admin",
    "django.contrib.messages",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "channels",
    "wsmanager",
    "demo_chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "demo_chat.urls"
ASGI_APPLICATION = "demo_chat.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

REDIS_URL = os.environ.get("REDIS_URL", "")


if REDIS_URL:
    from wsmanager.registry.redis import channel_layer_host

    REDIS_PREFIX = os.environ.get("WSMANAGER_REDIS_PREFIX", "demo")
    if REDIS_URL.startswith("redis+cluster://"):
        # channels_redis cannot follow a Redis Cluster: wsmanager's layer on sharded
        # pub/sub (docs/layers.md) carries the processes' messages.
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "wsmanager.layers.RedisClusterChannelLayer",
                "CONFIG": {
                    "url": REDIS_URL,
                    "prefix": f"{REDIS_PREFIX}:asgi",
                    "channel_capacity": {"wsmanager.node*": 10000},
                },
            }
        }
    else:
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    # redis:// or redis+sentinel:// (the sentinels, service and database);
                    # redis-py 6+ times reads out after 5 s, exactly channels_redis's 5 s
                    # blocking receive: give the layer's sockets more room.
                    "hosts": [channel_layer_host(REDIS_URL, socket_timeout=15)],
                    "prefix": f"{REDIS_PREFIX}:asgi",
                    # One message per process and broadcast: room for bursts.
                    "channel_capacity": {"wsmanager.node*": 10000},
                    "group_expiry": int(os.environ.get("CHANNELS_GROUP_EXPIRY", "86400")),
                },
            }
        }
    WSMANAGER = {
        "REGISTRY": {
            "BACKEND": "wsmanager.registry.redis.RedisRegistry",
            "OPTIONS": {"url": REDIS_URL, "prefix": f"{REDIS_PREFIX}:wsm"},
        },
        "HEARTBEAT_INTERVAL": float(os.environ.get("WSMANAGER_HEARTBEAT", "5")),
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    WSMANAGER = {}
# Publications kept per topic of the live socket (docs/topics.md); tests make it small.
WSMANAGER["TOPIC_HISTORY_SIZE"] = int(os.environ.get("DEMO_TOPIC_HISTORY_SIZE", "1000"))
# The most tasks the list may hold: a bulk request that would pass it is rolled back (409).
DEMO_MAX_TASKS = int(os.environ.get("DEMO_MAX_TASKS", "10000"))
# Seconds over which SIGTERM closes the sockets before the server stops (wsmanager.ops.drain).
WSMANAGER["DRAIN_PERIOD"] = float(os.environ.get("WSMANAGER_DRAIN_PERIOD", "5"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "wsmanager": {"handlers": ["console"], "level": os.environ.get("WSMANAGER_LOG", "INFO")},
    },
}
DEMO_API_TOKEN = os.environ.get("DEMO_API_TOKEN", "")
# DEMO_PASSWORD_HASHER=md5: the test suite's (tests/conftest.py) fast password hasher. Django's
# PBKDF2 costs 0.4 to 0.6 s of CPU per password set or checked, and the suite's servers and
# commands do that dozens of times. Never for real passwords.
if os.environ.get("DEMO_PASSWORD_HASHER") == "md5":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# A CSRF refusal of an API call answers JSON (Django's page elsewhere); see demo_chat/access.py.
CSRF_FAILURE_VIEW = "demo_chat.views.csrf_failure"
