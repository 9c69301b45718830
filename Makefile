# mobq — developer entry points. `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mobq-installed
DEMO_OUT ?= exports/demo-qwen3-tiny-8da4w-ctx256

.PHONY: help setup demo test test-fast lint format clean

help:
	@echo "make setup  - create .venv with the pinned toolchain (torch 2.13.0 CPU, executorch 1.5.1, torchao 0.18.0)"
	@echo "make demo   - build a tiny bundled model offline, export, verify, run and benchmark it"
	@echo "make test   - the whole test suite"
	@echo "make lint   - ruff"

setup: $(STAMP)

# torch first, pinned: installing it through the project would let pip pick a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,sweep]'
	touch $@

demo: setup
	$(BIN)/mobq demo --out $(DEMO_OUT)

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check toolchain tests bench
	$(BIN)/ruff format --check toolchain tests bench

format: setup
	$(BIN)/ruff format toolchain tests bench
	$(BIN)/ruff check --fix toolchain tests bench

clean:
	rm -rf exports build .pytest_cache
