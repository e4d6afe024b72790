# SCM Meterai: `make run` serves the demo, `make test` runs the whole suite (SQLite, then PostgreSQL).
# Both set up everything they need on a fresh clone: the virtualenv, the packages, the compiled
# translations and (as root, where missing) Chromium, PostgreSQL and poppler from Debian.

VENV      ?= .venv
PYTHON    ?= python3
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
# pytest-xdist: one worker per core, each with its own database, SMTP server and ports; an idle
# worker takes tests queued for a busy one (worksteal). `make test-sqlite WORKERS=0 ARGS="-k review"`
# runs in one process, e.g. to use a debugger.
WORKERS   ?= auto
PYTEST    := $(BIN)/pytest -p no:cacheprovider -n $(WORKERS) --dist worksteal
export FLASK_APP := wsgi.py

.PHONY: run test test-sqlite test-postgresql install system-deps translations lint extract-messages clean

run: install
	@bash scripts/system-deps.sh run
	$(BIN)/flask db upgrade
	$(BIN)/flask demo load
	@echo "SCM Meterai: http://127.0.0.1:5000  (stop with Ctrl+C)"
	$(BIN)/flask run --host 127.0.0.1 --port 5000

test: install system-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	SCM_TEST_DB=sqlite $(PYTEST)
	SCM_TEST_DB=postgresql $(PYTEST)

test-sqlite: install
	SCM_TEST_DB=sqlite $(PYTEST) $(ARGS)

test-postgresql: install
	SCM_TEST_DB=postgresql $(PYTEST) $(ARGS)

install: $(STAMP) translations

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

translations: $(STAMP)
	$(BIN)/pybabel compile -d translations 2>&1 | grep -v "^compiling" || true

extract-messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k _ln:1,2 -o translations/messages.pot .
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching

system-deps:
	@bash scripts/system-deps.sh test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) instance .pytest_cache
