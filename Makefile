PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv run test lint typecheck pytest openapi bench clean

$(BIN)/linstor-names: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,emulator]'
	@touch $@

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

## Regenerate the committed OpenAPI document.
openapi: venv
	$(BIN)/linstor-names openapi > openapi.json

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
