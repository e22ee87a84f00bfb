"""The demo's settings, plus a Vite app's build output among its static files.

``WSMANAGER_VITE_APP`` names the directory ``vite build`` wrote; Django serves
it under ``/static/vite-app/`` next to the static browser client, as a
project serves its front-end's build, so the app's socket is same-origin.
Used by tests/browser/test_npm_package.py.
"""

import os

from demo_chat.settings import *  # noqa: F403

STATICFILES_DIRS = [("vite-app", os.environ["WSMANAGER_VITE_APP"])]
