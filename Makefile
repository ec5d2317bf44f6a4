# Two commands for a fresh machine:
#   make demo   sets up .venv and trains on the sample in data/ (outputs in runs/demo)
#   make test   sets up .venv and runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test sample clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/segment train data/customers_sample.csv --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest

sample: $(STAMP)
	$(BIN)/python data/make_sample.py

clean:
	rm -rf $(VENV) .somseg runs .pytest_cache
