# The two set-up commands of README.md: `make demo` runs the whole workflow on config.yaml,
# `make test` runs the test suite (`make test-fast`: the edit loop's subset, under 3 minutes).
# All create the virtual environment when it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(abspath $(VENV))/bin
# Rules call `dlearn <stage>`: put the venv's console scripts on the jobs' PATH.
export PATH := $(BIN):$(PATH)

.PHONY: venv demo learning test test-fast bench lint fmt clean

venv: $(VENV)/.installed

# Reinstall when the dependency list changes; the stamp keeps repeated `make test` fast.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: venv
	$(BIN)/snakemake --profile workflow/profiles/default --cores $(CORES)

# The learning configuration (README, "Learning configuration"): 4x the demo's data, 7x its steps.
learning: venv
	$(BIN)/snakemake --profile workflow/profiles/default --cores $(CORES) --configfile config/learning.yaml

test: venv
	$(BIN)/python -m pytest

# No Snakemake runs (marked workflow), no SLURM, no long training (marked slow): ~1 min on 2 cores.
test-fast: venv
	$(BIN)/python -m pytest -m "not slow and not workflow"

bench: venv
	$(BIN)/python benchmarks/run_all.py

lint: venv
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/ruff check .

fmt: venv
	$(BIN)/snakefmt Snakefile workflow/rules

clean:
	rm -rf results results_learning logs .snakemake report.html
