# The two commands of the README: `make demo` and `make test`.
# Both create .venv and install what is missing; nothing else needs doing by hand.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install install-ray demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-run the install when the project's dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# compat: the editable install is a path entry, not an import hook that costs every
	# interpreter start (and so `galvana estop`) tens to hundreds of milliseconds.
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	touch $@

install: $(STAMP)

# The optional Ray executor (`galvana[ray]`): its own stamp, redone after every
# (re)install of the base, since that one may have been redone for a changed pyproject.
RAY_STAMP := $(VENV)/.installed-ray

$(RAY_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]' --config-settings editable_mode=compat
	touch $@

install-ray: $(RAY_STAMP)

demo: $(STAMP)
	$(BIN)/galvana demo

# Two workers, each taking whole test modules (their daemons and fixtures stay shared).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/galvana bench runtime

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
