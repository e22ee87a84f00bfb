# One command each: `make demo` runs the chat, `make test` runs every test.
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install demo test test-fast matrix lint browser-deps node-deps redis-deps bench clean

# The Python client (clients/python, its own distribution) goes in first: the
# server depends on it (wsmanager-client, same version) and finds it installed.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./clients/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Run the chat demo at http://127.0.0.1:8000/ (set REDIS_URL to use Redis).
demo: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

## Chromium from Debian for the browser tests (needs root; skipped otherwise).
browser-deps:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium from Debian's packages"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "could not install chromium: browser tests will skip"; \
	fi

## redis-server from Debian for the tests that start their own Redis (the outage and
## Sentinel tests; `redis-server --sentinel` runs a sentinel). Needs root; they skip otherwise.
redis-deps:
	@if ! command -v redis-server >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing redis-server from Debian's packages"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
		|| echo "could not install redis-server: the outage and Sentinel tests will skip"; \
	fi

## Node tools of the contract and npm package tests (package.json: TypeScript,
## the OpenRPC meta-schema, Vite) into node_modules; Node.js from Debian when
## missing and root. Without npm those tests skip (WSMANAGER_REQUIRE_NODE=1
## makes them fail).
node-deps:
	@if ! command -v npm >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing nodejs and npm from Debian's packages"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null) \
		|| echo "could not install npm: the TypeScript, OpenRPC and npm package tests will skip"; \
	fi
	@if command -v npm >/dev/null; then \
		if [ ! -f node_modules/.installed-stamp ] || [ package-lock.json -nt node_modules/.installed-stamp ]; then \
			npm ci --loglevel=error && touch node_modules/.installed-stamp \
			|| echo "npm ci failed: the TypeScript, OpenRPC and npm package tests will skip"; \
		fi; \
	else echo "no npm: the TypeScript, OpenRPC and npm package tests will skip"; fi
	@if command -v node >/dev/null && ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit((a === 20 && b >= 19) || (a === 22 && b >= 12) || a > 22 ? 0 : 1)'; then \
		echo "Node.js $$(node --version) is older than Vite 8 needs (20.19+ or 22.12+, not Debian 12's 18): the npm package test will skip"; \
	fi

## Every test: unit, end-to-end (real servers), Redis, browser, TypeScript, the npm
## package, on TEST_WORKERS pytest-xdist workers (tests/README.md: how the suite is split).
## Five on two cores: many tests wait on server processes, so five keep both cores busy
## (on 2 cores: 7.4 to 7.8 min with five, 8 to 9.5 on a slower machine; about 8.2 with
## four, 10 with three).
TEST_WORKERS ?= 5
## The project's byte code is compiled first, and the run may write byte code even where
## PYTHONDONTWRITEBYTECODE is set: the suite starts some 300 server and command processes,
## each of which would compile wsmanager and the demo again (80 ms of CPU each), and each
## worker rewrites the test modules' asserts (5 s of CPU) unless an earlier run cached them.
test: $(STAMP) browser-deps node-deps redis-deps
	$(BIN)/python -m compileall -q wsmanager demo_chat tests bench clients/python/src manage.py
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(TEST_WORKERS)

## Unit tests only (no servers, no browser, nothing slow).
FAST_WORKERS ?= 3
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(FAST_WORKERS) -m "not e2e and not browser and not redis and not slow"

## The support matrix (noxfile.py): unit suite, real daphne and uvicorn with Redis,
## and the built wheel installed as users get it, on (Python 3.11, Django 5.2) and
## (3.13, Django 6.1); a missing Python fails. NOXFLAGS="-s ..." picks sessions.
matrix: $(STAMP)
	$(BIN)/nox $(NOXFLAGS)

lint: $(STAMP)
	$(BIN)/ruff check wsmanager clients/python demo_chat tests bench noxfile.py
	$(BIN)/ruff format --check wsmanager clients/python demo_chat tests bench noxfile.py
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .nox .pytest_cache .mypy_cache .ruff_cache db.sqlite3 node_modules
