# Everything a user or CI needs, from a fresh clone: `make demo`, `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA := compose/local/kafka.sh

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show the targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

.PHONY: venv
venv: $(STAMP) ## Create the virtual env and install the bridge with its dev tools

.PHONY: kafka-up
kafka-up: ## Start the local Kafka broker (KRaft, 127.0.0.1:9092); idempotent
	$(KAFKA) up

.PHONY: kafka-down
kafka-down: ## Stop the local Kafka broker started by kafka-up
	$(KAFKA) down

.PHONY: lint
lint: $(STAMP) ## ruff and mypy --strict
	$(BIN)/ruff check bridge tests
	$(BIN)/ruff format --check bridge tests
	$(BIN)/mypy

.PHONY: test
test: $(STAMP) ## Lint, then the whole test suite against the real broker (started and stopped)
	$(MAKE) lint
	compose/local/with-kafka.sh $(BIN)/pytest

.PHONY: chaos
chaos: $(STAMP) ## The fault matrix with 3,000 changes per fault and the engine model with 5,000 examples (a longer soak than make test)
	P2C_FAULT_CHANGES=3000 compose/local/with-kafka.sh $(BIN)/pytest -s \
		tests/integration/test_faults.py tests/integration/test_crash_and_contract.py
	P2C_MODEL_EXAMPLES=5000 $(BIN)/pytest --timeout=3600 tests/unit/engine/test_model.py

.PHONY: bench
bench: $(STAMP) ## Every benchmark scenario beside its reference (~15 min); writes docs/bench/latest.* and README's table
	compose/local/with-kafka.sh $(BIN)/bridge bench --publish docs/bench $(BENCH_ARGS)

.PHONY: bench-quick
bench-quick: $(STAMP) ## The benchmark at smoke-test sizes (writes .local/bench only)
	compose/local/with-kafka.sh $(BIN)/bridge bench --quick $(BENCH_ARGS)

.PHONY: demo
demo: $(STAMP) ## Run the prospect-to-cash demo on the local stack (Ctrl-C stops all it started)
	compose/local/with-kafka.sh $(BIN)/bridge demo

.PHONY: clean
clean: kafka-down ## Stop the broker and remove local state
	rm -rf .local
