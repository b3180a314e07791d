# Two commands on a fresh machine: `make bench` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sqlabench-installed
PROFILE ?= quick
ARGS   ?=

.PHONY: bench test lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run every question's quick profile on the default backends; writes results/runs/*.json.
bench: $(STAMP)
	$(BIN)/sqlabench run all --profile $(PROFILE) $(ARGS)

## Run the tests (unit and integration, against real databases).
test: $(STAMP)
	$(BIN)/python -m pytest tests $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .benchmarks
