# Two entry points: `make demo` runs the example pipeline end to end on local
# storage, `make test` runs ruff, mypy and the test suite. Each builds .venv
# from nothing when it is missing or pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev

.PHONY: demo test lint typecheck pytest bench clean

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

venv: $(VENV)/.installed-$(EXTRAS)

demo: venv
	$(PY) example_projects/core_pipeline/demo.py

lint: venv
	$(VENV)/bin/ruff check lore_core lore_dagster lore_airflow tests benchmarks example_projects
	$(VENV)/bin/ruff format --check lore_core lore_dagster lore_airflow

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

bench: venv
	$(PY) benchmarks/bench_requests.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
