# Two entry points: `make demo` runs the example pipelines end to end on local
# storage (the core pipeline, then the Dagster and Airflow projects against a local
# S3 server), `make test` runs ruff, mypy and the whole test suite. Each builds
# .venv from nothing when it is missing or pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,dagster,airflow

.PHONY: venv demo demo-core demo-dagster demo-airflow ui-dagster ui-airflow test test-rgw lint typecheck pytest bench production soak clean

$(VENV)/.installed-$(EXTRAS): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

venv: $(VENV)/.installed-$(EXTRAS)

# Each example prints a short summary; Dagster's and Airflow's own logs go to .lore-demo/*.log
# (the path is printed). Stops at the first example that does not end with every file succeeded.
demo: venv
	@echo "== 1/3 core pipeline (lore_core on a local directory)"
	@$(PY) example_projects/core_pipeline/demo.py
	@printf "\n== 2/3 Dagster project (local S3 server)\n"
	@$(PY) example_projects/dagster_pipeline/demo.py --log .lore-demo/dagster.log
	@printf "\n== 3/3 Airflow DAGs (local S3 server)\n"
	@$(PY) example_projects/airflow_dags/demo.py --log .lore-demo/airflow.log

demo-core: venv
	$(PY) example_projects/core_pipeline/demo.py

demo-dagster: venv
	$(PY) example_projects/dagster_pipeline/demo.py

demo-airflow: venv
	$(PY) example_projects/airflow_dags/demo.py

# Open the UIs on the examples (local S3 server included); Ctrl-C stops everything.
ui-dagster: venv
	$(PY) example_projects/dagster_pipeline/ui.py

ui-airflow: venv
	$(PY) example_projects/airflow_dags/ui.py

lint: venv
	$(VENV)/bin/ruff check lore_core lore_dagster lore_airflow tests benchmarks example_projects
	$(VENV)/bin/ruff format --check lore_core lore_dagster lore_airflow

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

# The S3 tests against Ceph RGW (Debian's radosgw, one mon + one memstore OSD on 127.0.0.1),
# over HTTP and then HTTPS; installs the packages with apt-get when missing (root or sudo).
# Extra pytest arguments: make test-rgw PYTEST_ARGS='-k compat'.
test-rgw: venv
	PYTEST=$(VENV)/bin/pytest .ci/rgw.sh test $(PYTEST_ARGS)

# Every benchmark, each printing its figures (about 25 minutes on 2 cores); installs the [bench]
# extra (dagster-aws, the peer the Dagster figures are compared with) first.
$(VENV)/.installed-bench: $(VENV)/.installed-$(EXTRAS) pyproject.toml
	$(VENV)/bin/pip install --quiet -e '.[bench]'
	touch $@

bench: $(VENV)/.installed-bench
	$(PY) benchmarks/bench_requests.py
	$(PY) benchmarks/bench_growth.py
	$(PY) benchmarks/bench_lineage_growth.py
	$(PY) benchmarks/bench_critical_path.py
	$(PY) benchmarks/bench_dagster.py
	$(PY) benchmarks/bench_airflow.py
	$(PY) benchmarks/bench_cpu.py
	$(PY) benchmarks/bench_snapshot.py

# A month of a daily pipeline at production shape (about 15 minutes on 2 cores).
production: venv
	$(PY) benchmarks/production.py

soak: venv
	$(PY) benchmarks/soak.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
