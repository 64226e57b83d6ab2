# Two commands on a fresh machine:
#   make demo   set up everything and run the jobs demo end to end through a real qcluster
#   make test   set up everything and run the test suite on a throwaway PostgreSQL database
SHELL := /bin/bash
PY := .venv/bin/python
# The newest supported Python that runs here (3.13, 3.12, 3.11), or the one PYTHON names.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' >/dev/null 2>&1 \
	&& { echo $$p; break; }; done)
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
# One stamp per Python: asking for another Python rebuilds .venv with it.
STAMP := .venv/.installed-$(PYVER)

.PHONY: demo test test-slow setup venv db migrate lint bench run-web run-cluster stop-db clean

$(STAMP): pyproject.toml
	@test -n "$(PYVER)" || { echo "no Python 3.11-3.13 found: install one, or set PYTHON=" >&2; exit 1; }
	@if [ -x $(PY) ] && [ "$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "$(PYVER)" ]; then \
		echo "rebuilding .venv with Python $(PYVER)"; rm -rf .venv; fi
	@test -x $(PY) || $(PYTHON) -m venv .venv
	@mkdir -p .run
	@echo "installing Python packages into .venv (log: .run/pip.log)"
	@($(PY) -m pip install --upgrade pip && $(PY) -m pip install -e '.[dev]') >.run/pip.log 2>&1 \
		|| (tail -30 .run/pip.log; exit 1)
	@rm -f .venv/.installed*; touch $(STAMP)

venv: $(STAMP)

db:
	@scripts/pg.sh start >/dev/null

setup: venv db
	@DATABASE_URL=$$(cat .run/database_url) $(PY) manage.py migrate --noinput -v 0

# the dev settings: production's plus the dev kit (the demo, the fakes and the simulator)
demo: setup
	@DATABASE_URL=$$(cat .run/database_url) DJANGO_SETTINGS_MODULE=config.settings_dev \
		$(PY) manage.py demo

test: venv db
	@scripts/ensure_chromium.sh
	@DATABASE_URL=$$(cat .run/database_url) $(PY) -m pytest $(PYTEST_ARGS)

# the slow reliability suite (crash, fault and scale-out tests), one test at a time: they
# start several clusters and network namespaces each, and time their own faults
test-slow: venv db
	@DATABASE_URL=$$(cat .run/database_url) $(PY) -m pytest -m slow -n 0 $(PYTEST_ARGS)

lint: venv
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench: setup
	@DATABASE_URL=$$(cat .run/database_url) $(PY) bench/queue_throughput.py

run-web: setup
	@DATABASE_URL=$$(cat .run/database_url) $(PY) manage.py runserver

run-cluster: setup
	@DATABASE_URL=$$(cat .run/database_url) $(PY) manage.py run_clusters

stop-db:
	@scripts/pg.sh stop

clean: stop-db
	rm -rf .run .venv
