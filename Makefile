# Ensemble Live: two commands on a fresh clone.
#   make run   - set up and serve on http://127.0.0.1:8000 (HTTP + WebSockets, daphne)
#   make test  - the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test lint bench install clean-var

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '.[test]'
	@touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py seed_demo
	$(PY) manage.py ensure_experimenter --url http://$(HOST):$(PORT)/editor/
	@echo "Serving on http://$(HOST):$(PORT)/  (editor: http://$(HOST):$(PORT)/editor/)"
	$(PY) -m project.serve -b $(HOST) -p $(PORT) asgi:application

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	$(PY) -m pip install --quiet '.[test,bench]'
	$(PY) bench/run_all.py

clean-var:
	rm -rf var
