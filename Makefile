# Every target creates .venv and installs the project on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TENANT ?=
ARGS ?=
# A machine that sets PYTHONDONTWRITEBYTECODE (this development machine does) never caches the project's own
# bytecode, an editable install's pip does not compile it, and every command then compiles ~40 modules
# again as it starts (~0.1 s; the local service's process as well). Up to date, this takes ~0.05 s.
BYTECODE := $(PY) -m compileall -q pipeline bench

.DEFAULT_GOAL := help
.PHONY: help migrate report test bench serve-cognito stop-cognito demo lock lint clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'
	@echo "  Variables: TENANT=<name>[,<name>...] (those tenants), ARGS='...' (extra CLI options)"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

migrate: $(STAMP) ## Migrate every tenant (or TENANT=x) into the target pool; local Cognito by default
	@$(BYTECODE)
	$(PY) -m pipeline migrate $(if $(TENANT),--tenant $(TENANT)) $(ARGS)

report: $(STAMP) ## Data-quality report and would-be import files, touching no import job (TENANT=x for one)
	@$(BYTECODE)
	$(PY) -m pipeline report $(if $(TENANT),--tenant $(TENANT)) $(ARGS)

test: $(STAMP) ## Run the whole test suite (needs PostgreSQL and MariaDB running)
	@$(BYTECODE)
	$(PY) -m pytest -n 2 $(ARGS)

bench: $(STAMP) ## Run the benchmarks and print their ratios (ARGS=--help: each one and its options)
	@$(BYTECODE)
	$(PY) -m bench $(ARGS)

serve-cognito: $(STAMP) ## Run the local Cognito import service on 127.0.0.1 (PORT=9229)
	$(PY) -m pipeline serve-cognito --port $${PORT:-9229} $(ARGS)

stop-cognito: $(STAMP) ## Stop the local Cognito service that make migrate started
	$(PY) -m pipeline stop-cognito

demo: $(STAMP) ## (Re)generate the embedded demo legacy database
	$(PY) -m pipeline demo $(ARGS)

lock: ## Re-resolve the newest versions pyproject.toml allows into constraints.txt (then make test, make bench)
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade pip
	.venv-lock/bin/python -m pip install -q -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; .venv-lock/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .venv-lock
	@echo "constraints.txt updated: review 'git diff constraints.txt', then run make test and make bench"

lint: $(STAMP) ## ruff on the code, tests and benchmarks; mypy on pipeline/
	$(VENV)/bin/ruff check pipeline tests bench
	$(VENV)/bin/mypy

clean: ## Stop the local service; remove generated runs and demo data (keeps .venv)
	@test -x $(PY) && $(PY) -m pipeline stop-cognito || true
	rm -rf runs var .pytest_cache .mypy_cache bench/out
