# Two commands: `make run` and `make test`. Both need only Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1:8000

.PHONY: run test setup lint clean-db

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)
	mkdir -p var
	$(BIN)/python manage.py migrate --noinput

run: setup
	$(BIN)/python manage.py load_demo
	@echo "Admin: http://$(HOST)/admin/  API: http://$(HOST)/api/docs/  users: nurse, investigator, datamanager / registry-demo"
	$(BIN)/python manage.py runserver $(HOST)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean-db:
	rm -f var/registry.sqlite3
