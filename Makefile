PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv run test lint typecheck pytest openapi bench clean mutate soak

# One creation, however many targets start at once (`make run` and `make test` in a fresh clone): the recipe
# holds a lock, and who waited for it finds the venv made and up to date. Without flock (macOS), no lock.
VENV_LOCK := $(if $(shell command -v flock),flock $(VENV)/.make-lock,)

$(BIN)/linstor-names: pyproject.toml
	@mkdir -p $(VENV)
	$(VENV_LOCK) sh -ec 'if [ $@ -nt pyproject.toml ]; then exit 0; fi; \
		$(PYTHON) -m venv $(VENV); \
		$(BIN)/pip install --quiet --upgrade pip; \
		$(BIN)/pip install --quiet -e ".[test,emulator]"; \
		touch $@'

venv: $(BIN)/linstor-names

## Start the service on the embedded default: the LINSTOR emulator beside it, SQLite cache.
run: venv
	$(BIN)/linstor-names dev --host $(HOST) --port $(PORT)

## ruff, mypy --strict, pytest
test: venv lint typecheck pytest

lint: venv
	$(BIN)/ruff check app tests migrations
	$(BIN)/ruff format --check app tests migrations

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/pytest $(PYTEST_ARGS)

## Mutation testing (mutmut) of the domain and the cache: a table per module, MUTATE_BUDGET seconds each at most;
## MUTATE_ONLY="app/volumes.py app/cache/" runs only those. Not part of `test`: see "Mutation testing" in the README.
MUTATE_BUDGET ?= 1200
MUTATE_ONLY ?=

$(BIN)/mutmut: $(BIN)/linstor-names
	$(BIN)/pip install --quiet -e '.[test,emulator,mutate]'
	@touch $@

mutate: $(BIN)/mutmut
	rm -rf mutants
	nice -n 10 $(BIN)/python scripts/mutate.py run --budget $(MUTATE_BUDGET) $(if $(MUTATE_ONLY),--only $(MUTATE_ONLY)) \
		--survivors mutants/survivors.md

## Soak: 32 clients, mixed operations, injected LINSTOR faults, then lost/duplicated/orphaned (all must be 0).
SOAK_SECONDS ?= 120
soak: venv
	$(BIN)/python -m tests.benchmarks.soak --clients 32 --duration $(SOAK_SECONDS)

## Every performance figure of the README, one table (a few minutes; needs wrk): see "Performance" in the README.
BENCH_SIZES ?= 10000 100000
BENCH_SECONDS ?= 2
BENCH_ROUNDS ?= 3
BENCH_RATIO_ROUNDS ?= 5
bench: venv
	$(BIN)/python -m tests.benchmarks.bench --sizes $(BENCH_SIZES) --seconds $(BENCH_SECONDS) --rounds $(BENCH_ROUNDS) --ratio-rounds $(BENCH_RATIO_ROUNDS)

## Regenerate the committed OpenAPI document.
openapi: venv
	$(BIN)/linstor-names openapi > openapi.json

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
