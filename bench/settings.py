"""Django settings shared by the three benchmarked servers.

In-memory channel layer, registry and cache by default. With
``BENCH_REDIS_URL`` set, every system that can share state across processes
does it through that Redis: the Channels layer (``channels_redis``), the
wsmanager registry (``RedisRegistry``), the bare consumer's channel-name cache
(Django's ``RedisCache``) and socket.io's ``AsyncRedisManager``, all under the
run's ``BENCH_PREFIX`` so runs never see each other's keys.

``ROOT_URLCONF`` is the app module itself (each module under ``bench.apps``
is both the ASGI application and its URLconf); it sets ``BENCH_URLCONF``
before Django starts.
"""

from __future__ import annotations

import os

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "wsmanager",
]
# No HTTP middleware: the three send views pay the same (nothing) around them.
MIDDLEWARE: list[str] = []
ROOT_URLCONF = os.environ.get("BENCH_URLCONF", "bench.apps.bare")
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "")
PREFIX = os.environ.get("BENCH_PREFIX", "bench")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 reads with a 5 s socket timeout by default, the same
                # as channels_redis's 5 s BZPOPMIN: an idle channel's read then
                # times out (crashing a bare consumer, stalling wsmanager's node
                # reader). A longer timeout keeps both working.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
                "prefix": f"{PREFIX}:asgi",
                # wsmanager's node channel carries one message per broadcast and process.
                "channel_capacity": {"wsmanager.node*": 10000},
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"{PREFIX}:cache",
        }
    }
    WSMANAGER = {
        "REGISTRY": {
            "BACKEND": "wsmanager.registry.redis.RedisRegistry",
            "OPTIONS": {"url": REDIS_URL, "prefix": f"{PREFIX}:wsm"},
        },
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    WSMANAGER = {}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
