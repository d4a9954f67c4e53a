# One entry point per task; .ci/run and the README use these same targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The first run on a fresh machine has no destinations.yaml: use the shipped example.
DESTINATIONS ?= $(if $(wildcard destinations.yaml),destinations.yaml,destinations.example.yaml)

# The lock: every runtime dependency pinned with its hashes, for every platform, resolved
# by uv UV_VERSION from what the registry had at LOCK_DATE, so `make lock` gives the same
# file again until the date is moved: `make lock LOCK_DATE=$$(date -u +%FT%TZ)` refreshes it.
LOCK_DATE  ?= 2026-12-01T00:00:00Z
UV_VERSION ?= 0.13.9

.PHONY: install install-runtime run test lint typecheck check prism lock

# Runtime dependencies exactly as locked, then the package itself (editable).
$(VENV)/.runtime: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

# Development tools on top (pytest, ruff, mypy, ...), the runtime pins held as constraints
# (without their hashes: pip would then want hashes for the dev tools too).
$(VENV)/.dev: $(VENV)/.runtime
	sed -e '/--hash=/d' -e 's/ *\\$$//' requirements.lock > $(VENV)/constraints.txt
	$(BIN)/pip install --quiet -c $(VENV)/constraints.txt -e '.[dev]'
	@touch $@

## install: everything, for tests and checks; install-runtime: only what `run` needs
install: $(VENV)/.dev
install-runtime: $(VENV)/.runtime

## run: the service on its embedded default (embedded Redis under ./data, test mode
## unless Twilio credentials are set), with development tokens unless you set your own.
run: install-runtime
	SMS_DESTINATIONS_FILE=$${SMS_DESTINATIONS_FILE:-$(DESTINATIONS)} \
	SMS_INGEST_TOKEN=$${SMS_INGEST_TOKEN:-dev-ingest-token} \
	SMS_ADMIN_TOKEN=$${SMS_ADMIN_TOKEN:-dev-admin-token} \
	$(BIN)/smsdest serve

## lock: re-resolve requirements.lock from pyproject.toml (needs no working lock itself)
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet 'uv==$(UV_VERSION)'
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
		--exclude-newer $(LOCK_DATE) --custom-compile-command "make lock" \
		--quiet -o requirements.lock

## test: the whole suite (starts its own Redis; Prism for the contract test)
test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check app tests
	$(BIN)/ruff format --check app tests
	$(BIN)/hadolint Dockerfile

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

## prism: Twilio's OpenAPI description served as a validating mock (contract tests)
prism:
	test -x .tools/node_modules/.bin/prism || npm install --silent --prefix .tools @stoplight/prism-cli@5

# --- benchmark (bench/): everything on loopback, its own redis-server, results in
# bench/results/latest.{json,md}. wrk comes from apt when missing (else a Python fallback).
.PHONY: bench bench-quick

## bench: every figure, 5 runs of 10 s each (median)
bench: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| echo "wrk could not be installed: the Python load generator will be used"
	$(BIN)/python -m bench.run

## bench-quick: the same figures, 3 runs of 1 s each, in under a minute
bench-quick: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| echo "wrk could not be installed: the Python load generator will be used"
	$(BIN)/python -m bench.run --quick
