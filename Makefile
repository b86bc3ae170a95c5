# The two commands of the quickstart: `make run` and `make test`.
# Everything else here serves them; the virtualenv is rebuilt whenever the lock changes.

VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.8
STAMP := $(VENV)/.synced

.DEFAULT_GOAL := help
# Three pytest-xdist workers for every two cores, never fewer than three (override: make test
# TEST_WORKERS=4): the suite waits on live servers, subprocesses and simulators' clocks for a
# third of its time, so two workers left the cores idle (2 cores: 4 min 06 s with two, 3 min
# 51 s with three). On Redis every worker would share one queue and one cache (each purges and
# clears them), so with REDIS_URL the suite runs in a single process (-n 0).
TEST_WORKERS ?= $(if $(REDIS_URL),0,$(shell n=$$(nproc 2>/dev/null || echo 2); w=$$((n * 3 / 2)); [ "$$w" -gt 3 ] && echo "$$w" || echo 3))

.PHONY: help run test test-browser test-drills lint format migrate shell bench clean

help:
	@echo "make run     start web, worker and Kie simulator on http://127.0.0.1:$${PORT:-8000}/"
	@echo "make test    run the whole test suite in parallel, browser journeys included (drills aside)"
	@echo "make test-browser  run only the browser journeys (needs /usr/bin/chromium)"
	@echo "make test-drills   run the drills (worker clusters; need PostgreSQL and Redis)"
	@echo "make lint    ruff (lint + format check), mypy and the import layers (import-linter)"
	@echo "make format  apply ruff's fixes and formatting"

# Django 6 needs Python >= 3.12: bin/find-python looks on PATH first, then in pyenv.
$(PY):
	@interpreter=$$(bin/find-python) && echo "Using $$interpreter" && "$$interpreter" -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml uv.lock
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	UV_PROJECT_ENVIRONMENT=$(VENV) $(VENV)/bin/uv sync --locked --inexact --python $(PY)
	@touch $@

run: $(STAMP)
	exec $(PY) manage.py run_local

# Tests start Python many times (xdist workers, `manage.py` in subprocesses, worker clusters,
# gunicorn): with PYTHONDONTWRITEBYTECODE set in the environment, each of them compiled Django
# and the app from source again (2.9 s of CPU per start-up instead of 1.0 s), and pytest
# rewrote every test module's asserts again in every worker. The tests let Python keep its
# bytecode (in __pycache__, ignored by git), so only the first run after a change pays.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest

# The drills (real worker clusters, tens of seconds each) are left to `make test-drills`, which
# CI runs on PostgreSQL and Redis. -rs shows why any test was skipped (no Chromium, say); a
# `-m` in PYTEST_ARGS replaces the "not drill" below.
test: $(STAMP)
	$(PYTEST) -n $(TEST_WORKERS) -rs -m "not drill" $(PYTEST_ARGS)

# Playwright drives Debian's Chromium (apt-get install chromium).
test-browser: $(STAMP)
	$(PYTEST) -n $(TEST_WORKERS) -rs tests/browser $(PYTEST_ARGS)

test-drills: $(STAMP)
	$(PYTEST) -n $(TEST_WORKERS) -rs -m drill $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrate: $(STAMP)
	$(PY) manage.py migrate

shell: $(STAMP)
	$(PY) manage.py shell

clean:
	rm -rf $(VENV) var

# The soak (bench/soak.py): every provider, faults drawn from SOAK_SEED, and the proofs at the
# end. It migrates the PostgreSQL database of DATABASE_URL and empties the queue on REDIS_URL:
# give it its own. SOAK_JOBS=2000 SOAK_MINUTES=5 is the CI size; 20000 and 40 the full soak.
SOAK_JOBS ?= 300
SOAK_SEED ?= 23
SOAK_MINUTES ?= 10
soak: $(STAMP)
	$(PY) bench/soak.py --jobs $(SOAK_JOBS) --seed $(SOAK_SEED) --minutes $(SOAK_MINUTES)
.PHONY: soak
