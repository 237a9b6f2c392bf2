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

# The main job: a real AutoPEFT search (SAAS GP by NUTS + qLogNEHVI) on MiniLM and GLUE STS-B at the
# fidelity `autopeft calibrate` chose for it (1000 training examples x 1 epoch: ratio 3.2, margin 19.3
# SE at today's defaults; docs/BENCHMARKS.md), two trials at once on the two cores, then its report.
# Run again, it continues.
DEMO_FIDELITY ?= epochs=1,max_train_samples=1000,batch_size=16,lr=1e-3,pooling=mean
DEMO_TRIALS ?= 14
demo: install
	$(VENV)/bin/autopeft search --model minilm --task stsb --trials $(DEMO_TRIALS) --sampler autopeft --startup 6 \
		--fidelity $(DEMO_FIDELITY) --jobs 2 --study demo --report reports/demo
	@echo "Browse the study with: $(VENV)/bin/optuna-dashboard sqlite:///studies/autopeft.db"

test: install
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(PY) -m pytest -q -ra --durations=15  # the slowest, to keep the suite under 20 minutes

lint: install
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

clean:
	rm -rf $(VENV) .pytest_cache
