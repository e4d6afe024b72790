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
PIP_VERSION := 26.3
PYTEST    := $(BIN)/pytest -p no:cacheprovider -n $(WORKERS) --dist worksteal
export FLASK_APP := wsgi.py

.PHONY: run test test-sqlite test-postgresql install system-deps translations lint lock extract-messages clean

run: install
	@bash scripts/system-deps.sh run
	$(BIN)/flask db upgrade
	$(BIN)/flask demo load
	@echo "SCM Meterai: http://127.0.0.1:5000  (the web app, the scheduler and a queue worker; Ctrl+C stops them)"
	PATH="$(CURDIR)/$(BIN):$$PATH" PYTHONUNBUFFERED=1 $(BIN)/honcho start --port 5000

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

# Every package, direct or not, at the version and hashes of the lock file (requirements/test.txt:
# the app and its test tools); then the project itself, without resolving anything again.
$(STAMP): pyproject.toml requirements/test.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/test.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# After changing a dependency in pyproject.toml: resolve again, with the hashes of every file of
# every version chosen (requirements/app.txt for servers, requirements/test.txt for make and CI).
lock:
	$(BIN)/python -m pip install --quiet pip-tools==7.6.2
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links \
		--no-emit-index-url -o requirements/app.txt pyproject.toml
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links \
		--no-emit-index-url --extra test -o requirements/test.txt pyproject.toml

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
