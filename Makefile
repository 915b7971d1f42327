# Everything runs natively on this machine; see README.md.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PY := $(UV) run --frozen python

.PHONY: help deps install run test demo lint fmt clean bench bench-peer compose-test

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

deps:  ## install uv if missing, then the locked Python dependencies
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

install: deps  ## + FerretDB (built locally), Redis and RabbitMQ (apt) when missing
	@$(PY) -m devstack install

run: install  ## start everything in the foreground; Ctrl-C stops it all
	@$(PY) -m devstack run

test: install  ## the whole test suite, against real servers it starts itself
	@$(UV) run --frozen pytest

demo: deps  ## a three-turn training session against the running stack (make run first)
	@$(PY) -m devstack.demo

lint:  ## check formatting and lint rules
	@$(UV) run --frozen ruff format --check .
	@$(UV) run --frozen ruff check .

fmt:  ## fix formatting and what the linter can fix
	@$(UV) run --frozen ruff format .
	@$(UV) run --frozen ruff check --fix .

clean:  ## remove local state (databases, logs); keeps the built FerretDB
	rm -rf .local/state

bench: install  ## benchmark suite against a stack it starts on its own ports (~5 min; docs/performance.md)
	@$(PY) benchmarks/bench.py $(BENCH_ARGS)

bench-peer: install  ## the streaming benchmark side by side with a LiteLLM proxy (installed under .local/)
	@$(PY) benchmarks/bench.py --only streaming --peer $(BENCH_ARGS)

COMPOSE_E2E := docker compose -f docker-compose.yml -f deploy/docker/compose.e2e.yml --profile test

compose-test:  ## the e2e suite inside docker compose (needs a Docker engine; ours have none)
	$(COMPOSE_E2E) up --build --abort-on-container-exit --exit-code-from tests; \
	status=$$?; $(COMPOSE_E2E) down -v; exit $$status
