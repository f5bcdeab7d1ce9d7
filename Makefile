# deploylab — every target sets up what it needs: .venv/ at the repo root, pinned packages.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deploylab-installed
PYTEST_ARGS ?=
MYPY_TREE := $(VENV)/mypy-tree

.PHONY: help install system-deps test test-unit test-integration lint compare compare-quick export serve bench chaos dashboards clean

help:
	@echo "make compare   export the default model set, serve it, run the load sweep, write the report"
	@echo "make test      lint, type-check, unit + integration tests (real Triton, gateway, Prometheus)"
	@echo "make install   create .venv/ and install the pinned project"
	@echo "also: compare-quick, export, serve, bench, chaos, dashboards, test-unit, test-integration, clean"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Prometheus/promtool for the observability tests (Debian package; installed only when missing).
system-deps:
	@./scripts/install-system-deps.sh wrk

lint: install
	$(BIN)/ruff check services loadtests benchmarks tests
	@# mypy resolves `deploylab.services…` through a tree of links (the editable install's import hook is
	@# invisible to it); the tree lives in .venv and is rebuilt on every run.
	@mkdir -p $(MYPY_TREE)/deploylab && for d in services loadtests benchmarks; do ln -sfn $(CURDIR)/$$d $(MYPY_TREE)/deploylab/$$d; done
	cd $(MYPY_TREE) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml deploylab/services deploylab/loadtests deploylab/benchmarks

test: install system-deps lint
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: install
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

test-integration: install system-deps
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

compare: install
	$(BIN)/deploylab compare

compare-quick: install
	$(BIN)/deploylab compare --quick

export: install
	$(BIN)/deploylab export --set default

serve: install
	$(BIN)/deploylab serve

bench: install
	@./scripts/install-system-deps.sh wrk
	$(BIN)/deploylab bench

chaos: install
	$(BIN)/deploylab chaos

# Regenerate the Grafana dashboards JSON and the k8s PrometheusRule from code (services/dashboards).
dashboards: install
	$(BIN)/python -m deploylab.services.dashboards

clean:
	rm -rf model_repository/*/ .deploylab results .pytest_cache .mypy_cache .ruff_cache
