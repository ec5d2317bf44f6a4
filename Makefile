# Two commands for a fresh machine:
#   make demo   sets up .venv and trains the reference recipe on the sample in data/ (outputs in runs/demo)
#   make test   sets up .venv and runs the whole test suite (what CI runs)
# While developing:
#   make test-fast   unit and wiring tests, under a minute (no flow runs, reference table, Dask cluster, server or browser)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

FAST := not slow and not server and not browser and not reference and not flow

.PHONY: setup demo test test-fast sample clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test,dask]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/segment train data/customers_sample.csv --config configs/reference.yaml --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "$(FAST)"

sample: $(STAMP)
	$(BIN)/python data/make_sample.py

clean:
	rm -rf $(VENV) .somseg runs .pytest_cache
