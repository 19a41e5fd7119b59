# Entry points, all of which set up a fresh machine first:
#   make train     - the reference run (accelerate launch train.py, defaults)
#   make lint      - ruff (lint and format check) and mypy, configured in pyproject.toml
#   make test      - the test suite (what CI runs, after make lint and make docs)
#   make test-fast - the suite without the real launches (marked e2e)
#   make docs      - the docs site (mkdocs, offline) into site/, strict: a broken link fails it
#   make bench     - the trainer against a bare PyTorch loop, CPU (bench/run.py)
#   make bench-gpu - the same on one CUDA GPU in fp16; refuses without one
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: setup train lint test test-fast docs bench bench-gpu

setup: $(VENV)/.installed

# torch first and pinned: with nothing installed, a loose `torch` resolves to a multi-GB
# CUDA build; 2.13.0 is a CPU wheel on CPU machines. constraints.txt pins what was tested.
$(VENV)/.installed: setup.cfg constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[test,lint,tensorboard,docs]"
	touch $@

# The ready config for this machine, named, so that `accelerate launch` has nothing to print
# about values it had to default (its block of "values were not passed" lines).
# One thread per process: two spin-wait for each other and collapse beside any other job (train/threads.py).
LAUNCH := $(if $(shell nvidia-smi -L 2>/dev/null),--config_file accelerate_configs/gpu.yaml,--config_file accelerate_configs/cpu.yaml --num_cpu_threads_per_process 1)

train: setup
	$(VENV)/bin/accelerate launch $(LAUNCH) train.py $(ARGS)

# Style and types: a finding fails the target. `ruff format .` and `ruff check --fix .` repair most.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# One pytest worker per core (pytest-xdist), at most 4: the suite's time is mostly train.py
# processes starting and waiting, so two workers on 2 cores take 6 min instead of 10.
# Each worker keeps its own datasets cache and HF_HOME (tests/conftest.py).
TEST_WORKERS ?= -n auto --maxprocesses 4

test: setup
	WANDB_MODE=offline $(PY) -m pytest -q $(TEST_WORKERS)

test-fast: setup
	WANDB_MODE=offline $(PY) -m pytest -q $(TEST_WORKERS) -m "not e2e"

# The README's results block rewritten from docs/results/ (under CI only checked: a stale block fails),
# then the site. The pages' tables are rendered by docs/hooks.py during the build.
# NO_MKDOCS_2_WARNING: Material's banner about MkDocs 2.0, printed on every build.
docs: setup
	$(PY) docs/hooks.py $(if $(CI),--check)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: setup
	$(PY) bench/run.py $(ARGS)

bench-gpu: setup
	$(PY) bench/run.py --device cuda $(ARGS)
