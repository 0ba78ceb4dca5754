# The commands a user types. Everything lands under var/ (git-ignored).
#   make up      install what is missing and run the whole pipeline
#   make down    stop everything `make up` started
#   make status  what runs, where, and its health
#   make test    the test suite (unit + integration on real services; installs Chromium for the UI test)
#   make dbt     dbt build over the lake (ARGS="..." replaces `build`)
SHELL := /bin/bash
PYTHON ?= python3
VENV := var/venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
LOCKS := infra/requirements/bootstrap.lock infra/requirements/main.lock

.PHONY: up down status dbt test test-unit install lint bench lock clean

$(STAMP): $(LOCKS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=...)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r infra/requirements/bootstrap.lock
	@$(UV) pip install --quiet --python $(PY) --require-hashes -r infra/requirements/main.lock
	@# the project's packages and the interceptor's (interceptor/src) are importable from the checkout
	@$(PY) -c 'import site, sys; open(site.getsitepackages()[0] + "/http_events_pipeline.pth", "w").write("".join(p + "\n" for p in sys.argv[1:]))' "$(CURDIR)" "$(CURDIR)/interceptor/src"
	@touch $(STAMP)

install: $(STAMP)
	@$(PY) -m infra install

up: $(STAMP)
	@$(PY) -m infra up

down: $(STAMP)
	@$(PY) -m infra down

status: $(STAMP)
	@$(PY) -m infra status

dbt: $(STAMP)
	@$(PY) -m infra dbt $(or $(ARGS),build)

test: $(STAMP)
	@$(PY) -m infra install --browser
	@$(PY) -m pytest

test-unit: $(STAMP)
	@$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .
	@$(PY) -m mypy
	@$(VENV)/bin/lint-imports --no-cache

bench: install
	@$(PY) -m bench

lock: $(STAMP)
	@$(PY) -m infra lock

clean: $(STAMP)
	@$(PY) -m infra clean
	rm -rf var
