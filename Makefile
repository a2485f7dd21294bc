# Two commands a new user needs: `make demo` (main job) and `make test` (the tests).
# Both create .venv and install the pinned dependency set (constraints.txt) when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pipelines.warm  # numba kernels compiled into their cache once
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/delinq demo

# ruff, then the import contracts of pyproject.toml (layers, no Prefect below pipelines, no
# other package's private modules), then the tests on TEST_WORKERS processes (pytest-xdist;
# loadgroup: the tests of one live server run on one worker, see tests/conftest.py).
# `make test TEST_WORKERS=0` runs them in this one process.
TEST_WORKERS ?= 2
test: lint
	$(BIN)/python -m pytest -q --durations=10 -n $(TEST_WORKERS) --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
