# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 5000
# `make test` runs in this many processes, each on a PostgreSQL database and a Redis db of its own
# (tests/conftest.py): two keep a 2-core machine busy while one waits on the databases.
TEST_WORKERS ?= 2
export HOST PORT

BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi

.PHONY: run test test-browser messages translations worker migrate lock bench-forward bench-landing bench-dispatch bench-caps bench-analytics bench-sandbox bench-hooks bench-outage lint typecheck clean

# The runtime installs from the lock: every package, transitive ones included, at the version
# and with the hashes requirements.lock names (`make lock` writes it from requirements.txt).
$(VENV)/.runtime: requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Languages (docs/translations.md). The catalogs (translations/*/LC_MESSAGES/messages.po) are
# in the repository; their compiled .mo files are not, and are built here, offline.
PYBABEL := $(BIN)/pybabel
BABEL_KEYWORDS := -k lazy_gettext -k lazy_ngettext:1,2 -k lazy_pgettext:1c,2

## messages: extract every marked string into translations/messages.pot and merge it into each catalog
messages: $(VENV)/.runtime
	$(PYBABEL) --quiet extract -F babel.cfg $(BABEL_KEYWORDS) --add-location=file --sort-output \
	  --project Fluister --copyright-holder "Fluister contributors" -o translations/messages.pot .
	$(PYBABEL) --quiet update --no-fuzzy-matching --ignore-obsolete -i translations/messages.pot -d translations

## translations: compile the catalogs (.po -> .mo) that changed, which the app reads at run time
translations: $(VENV)/.runtime
	$(BIN)/python -m engine.catalogs

# The demo is an Amsterdam coffee bar: its console shows euros and Amsterdam time, unless the
# environment or .env says otherwise (the settings' own defaults stay USD and UTC).
DEMO_DEFAULTS := $(if $(or $(SMS_PRICE_CURRENCY),$(shell grep -s '^SMS_PRICE_CURRENCY=' .env)),,SMS_PRICE_CURRENCY=EUR) \
  $(if $(or $(DEFAULT_TIME_ZONE),$(shell grep -s '^DEFAULT_TIME_ZONE=' .env)),,DEFAULT_TIME_ZONE=Europe/Amsterdam)

## run: migrate, seed the demo campaign and serve on HOST:PORT (embedded default unless DATABASE_URL/REDIS_URL are set)
run: $(VENV)/.runtime translations
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	@echo "Fluister: http://$(HOST):$(PORT)/c/demo  (outbox: http://$(HOST):$(PORT)/dev/outbox)"
	@echo "Staff console: http://$(HOST):$(PORT)/login  (no account is made for you; create one with:"
	@echo "  $(FLASK) users create you@example.com --role admin)"
	env $(DEMO_DEFAULTS) $(FLASK) run --host $(HOST) --port $(PORT) --no-reload

## test: every test (unit, integration, e2e; the browser tests need Debian's chromium: apt-get install chromium)
test: $(VENV)/.dev translations
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## test-browser: only the browser tests (Chromium via Playwright) and the API schema test; screenshots in test-artifacts/screenshots/
test-browser: $(VENV)/.dev translations
	$(BIN)/python -m pytest tests/e2e/browser tests/e2e/test_api_schema.py $(PYTEST_ARGS); \
	  status=$$?; echo "Screenshots: $(CURDIR)/test-artifacts/screenshots/"; exit $$status

## worker: a delivery worker (needs REDIS_URL and DATABASE_URL)
worker: $(VENV)/.runtime translations
	$(FLASK) worker

migrate: $(VENV)/.runtime
	$(FLASK) db upgrade

## bench-forward: the forward POST against a hello-world endpoint, under gunicorn with PostgreSQL and Redis
bench-forward: $(VENV)/.dev
	$(BIN)/python -m bench.forward

## bench-landing: the landing page GET (first visit, through a tracked link; 1 vs 1,000,000 forwards) against healthz
bench-landing: $(VENV)/.dev
	$(BIN)/python -m bench.landing

## bench-dispatch: the send loop into a SendGrid stub, against a naive one-job-per-message baseline
bench-dispatch: $(VENV)/.dev
	$(BIN)/python -m bench.dispatch

## bench-hooks: how long a forged 9 MB webhook body holds a gunicorn sync worker
bench-hooks: $(VENV)/.dev
	$(BIN)/python -m bench.hooks

## bench-outage: a worker through a 150 s Redis outage: its log lines, and how soon it works again
bench-outage: $(VENV)/.dev
	$(BIN)/python -m bench.outage

## bench-caps: a cap check against a Redis PING, and the worst second of paced texts from 4 worker processes
bench-caps: $(VENV)/.dev
	$(BIN)/python -m bench.caps

## bench-analytics: the campaign dashboard's queries on a generated campaign of 1,000,000 forwards (PostgreSQL)
bench-analytics: $(VENV)/.dev
	$(BIN)/python -m bench.analytics

## bench-sandbox: the memory and time of the heaviest templates a render accepts, and of hostile ones it refuses
bench-sandbox: $(VENV)/.dev
	$(BIN)/python -m bench.sandbox

## lock: write requirements.lock (every runtime package, pinned with hashes) from requirements.txt
lock: $(VENV)/.dev
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	  --no-emit-find-links --no-emit-trusted-host --output-file requirements.lock requirements.txt

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## typecheck: mypy over engine/, workers/ and config/ (settings in pyproject.toml)
typecheck: $(VENV)/.dev
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
