# Two commands on a fresh machine: `make bench` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PROFILE ?= quick
ARGS   ?=
# extra requirements installed with the project, e.g. PIN="sqlalchemy==2.0.58" VENV=.venv-sa20;
# each is quoted for the shell, and another PIN makes another stamp, so the venv is reinstalled
PIN    ?=
STAMP  := $(VENV)/.sqlabench-installed$(if $(strip $(PIN)),-$(shell printf '%s' '$(PIN)' | cksum | cut -d' ' -f1))

.PHONY: bench charts report test test-slow lint install clean

$(STAMP): pyproject.toml setup.py src/sqlabench/_callgrind.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]' $(foreach r,$(PIN),'$(r)')
	touch $(STAMP)

install: $(STAMP)

## Run every question's quick profile on the default backends; writes results/runs/*.json,
## then that run's charts and report into results/latest/.
bench: $(STAMP)
	$(BIN)/sqlabench run all --profile $(PROFILE) --report results/latest $(ARGS)

# the newest result file, unless RESULTS names others
RESULTS ?= $(shell ls -t results/runs/*.json 2>/dev/null | head -1)

## Charts (PNG and SVG) of RESULTS (default: the newest run) into results/charts/.
charts: $(STAMP)
	@test -n "$(RESULTS)" || { echo "make charts: no result in results/runs; run make bench first, or give RESULTS=FILE..." >&2; exit 2; }
	$(BIN)/sqlabench plot $(RESULTS) --out results/charts

## report.md and report.html (with charts) of RESULTS into results/report/.
report: $(STAMP)
	@test -n "$(RESULTS)" || { echo "make report: no result in results/runs; run make bench first, or give RESULTS=FILE..." >&2; exit 2; }
	$(BIN)/sqlabench report $(RESULTS) --out results/report

.PHONY: bench-pr baseline
BASE   ?= main
PASSES ?= 3

## The regression gate: BASE and this checkout benchmarked in turn, PASSES passes each, then
## compared (results/pr/compare.md); exit 1 on a regression. ARGS go to `sqlabench run`.
bench-pr: $(STAMP)
	$(BIN)/sqlabench gate --base $(BASE) --passes $(PASSES) --profile $(PROFILE) $(if $(strip $(ARGS)),-- $(ARGS))

## A new baseline: all questions, 3 passes and the counting pass, promoted to
## results/baseline.json (the previous one is kept in results/runs/ as baseline-<its start>.json).
## ARGS go to `sqlabench baseline` (e.g. -b sqlite).
baseline: $(STAMP)
	$(BIN)/sqlabench baseline --profile $(PROFILE) $(ARGS)

## Run the tests (unit and integration, against real databases).
test: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow" $(ARGS)

## The long tests make test leaves out: ten random fault moments per fault across whole quick
## runs (about an hour here; SQLABENCH_FAULT_SEED=N replays one, SQLABENCH_FAULT_MOMENTS=K
## sets ten) and a real SQLAlchemy 2.0-vs-2.1 matrix (environments built from the registry).
test-slow: $(STAMP)
	$(BIN)/python -m pytest tests -m slow -v $(ARGS)

## ruff and mypy --strict over every Python directory (benchmarks/ apart: its conftest.py and
## tests/conftest.py are both a module named conftest to mypy).
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts examples
	$(BIN)/ruff format --check src tests benchmarks scripts examples
	$(BIN)/mypy
	$(BIN)/mypy benchmarks

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .benchmarks
