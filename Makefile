# Two entry points (see README): `make demo` runs the main job, `make test` runs the test suite.
# Both create .venv and install the project from its own files; torch's CPU wheel goes in first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
GLUE_DIR ?= $(abspath ../shared/data/glue)
export AUTOPEFT_GLUE_DIR ?= $(GLUE_DIR)

.PHONY: install demo test lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/autopeft space --model minilm --sample 20 --seed 0 --verify

test: install
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(PY) -m pytest -q -ra

lint: install
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

clean:
	rm -rf $(VENV) .pytest_cache
