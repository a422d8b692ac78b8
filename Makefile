# Two commands on a fresh machine: `make run` (platform + demo data) and `make test`.
# Needs only python3 (>= 3.11); without DATABASE_URL / REDIS_URL, embedded servers are started.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
INSTALL_LOG := $(VENV)/install.log
PYTEST_ARGS ?=

.PHONY: install run test lint format typecheck bench schema clean

# Quiet when it works; on a failure the whole pip log is shown and make stops.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "make install: Python >= 3.11 is needed; $(PYTHON) is $$($(PYTHON) -V 2>&1)" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the project and its dev tools into $(VENV) (log: $(INSTALL_LOG))"
	@{ $(BIN)/python -m pip install --upgrade pip \
		&& $(BIN)/python -m pip install --editable '.[dev,embedded]'; } > $(INSTALL_LOG) 2>&1 \
		|| { cat $(INSTALL_LOG); echo "make install: pip failed (log above, kept in $(INSTALL_LOG))" >&2; exit 1; }
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python -m config.dev run

test: install
	$(BIN)/python -m config.dev exec -- $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/python -m config.dev exec -- $(BIN)/mypy .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schema: install
	$(BIN)/python -m config.dev exec -- $(BIN)/python manage.py spectacular --validate --fail-on-warn --file .data/openapi.yaml

# The benchmarks also need the `bench` extra (django-hordak, compared against the ledger).
$(VENV)/.bench-stamp: $(STAMP)
	@$(BIN)/python -m pip install --editable '.[dev,embedded,bench]' > $(INSTALL_LOG) 2>&1 \
		|| { cat $(INSTALL_LOG); echo "make bench: pip failed (log above)" >&2; exit 1; }
	@touch $@

bench: $(VENV)/.bench-stamp
	$(BIN)/python -m config.dev exec -- $(BIN)/python -m bench $(BENCH)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
