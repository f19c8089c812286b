# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs first.
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.installed

export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
# PYTHONDONTWRITEBYTECODE is set on these machines; without .pyc every cold import takes twice as long.
export UV_COMPILE_BYTECODE := 1

.PHONY: install system-tools demo test test-fast bench lint clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	touch $(STAMP)

install: $(STAMP)

# System packages the tests need: docker-compose (Debian's) validates docker-compose.yaml; no engine is needed.
system-tools:
	@command -v docker-compose >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y -q docker-compose || \
	  { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q docker-compose; }; }

demo: install
	$(VENV)/bin/airflow-mlops demo --home .demo

test: install system-tools
	$(VENV)/bin/python -m pytest

test-fast: install system-tools
	$(VENV)/bin/python -m pytest -m "not slow"

bench: install
	$(VENV)/bin/python bench/gate_stats.py
	$(VENV)/bin/python bench/drift.py
	$(VENV)/bin/python bench/scoring.py
	$(VENV)/bin/python bench/canary.py
	$(VENV)/bin/python bench/data_load.py
	$(VENV)/bin/python bench/validation.py

lint: install
	$(VENV)/bin/ruff check airflow_mlops tests dags bench

clean:
	rm -rf $(VENV) $(TOOLS) .demo .pytest_cache
