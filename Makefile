# Every target sets itself up: a fresh machine needs only python3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test soak bench bench-rivals tf-compat lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamps re-install only when pyproject.toml changes.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e ".[bench,trio]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/python -m aiopipe demo

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

# The randomised fault-injection soak (issue 11): SOAK_N, SOAK_SEED, SOAK_JOBS, SOAK_ONLY=<index>.
soak: $(VENV)/.installed-test
	$(BIN)/python -m tests.soak

bench: $(VENV)/.installed-bench
	$(BIN)/python -m aiopipe bench

# Rivals live in their own environment so that the library's never depends on them.
bench-rivals:
	$(MAKE) -f benchmarks/rivals.mk

# Byte-compatibility with TensorFlow's own TFRecord reader and writer, in the rivals' environment.
tf-compat:
	$(MAKE) -f benchmarks/rivals.mk tf-compat

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .venv-rivals build dist src/*.egg-info .bench
