# The two set-up commands are `make run` and `make test`; both work on a bare machine
# with python3 (3.11+), creating .venv from the pinned requirement files.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint serve clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime
	DEBUG=1 $(PY) manage.py migrate --noinput
	DEBUG=1 $(PY) manage.py load_demo
	@echo "Remissprio: http://$(HOST):$(PORT)/"
	DEBUG=1 $(PY) manage.py runserver $(HOST):$(PORT)

test: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_ARGS)

# Production settings (DEBUG off) under gunicorn on PostgreSQL, for trying production
# locally: plain HTTP, so TLS-only cookies and the HTTPS redirect are switched off here.
SERVE_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/remissprio
serve: $(VENV)/.runtime
	psql "$(dir $(SERVE_DATABASE_URL))postgres" -tAc "SELECT 1 FROM pg_database WHERE datname='$(notdir $(SERVE_DATABASE_URL))'" | grep -q 1 \
		|| psql "$(dir $(SERVE_DATABASE_URL))postgres" -c "CREATE DATABASE $(notdir $(SERVE_DATABASE_URL))"
	DATABASE_URL=$(SERVE_DATABASE_URL) $(PY) manage.py migrate --noinput
	DATABASE_URL=$(SERVE_DATABASE_URL) $(PY) manage.py collectstatic --noinput -v0
	DATABASE_URL=$(SERVE_DATABASE_URL) SECRET_KEY=$${SECRET_KEY:-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(50))')} \
		ALLOWED_HOSTS=$${ALLOWED_HOSTS:-127.0.0.1,localhost} SECURE_SSL_REDIRECT=0 SECURE_COOKIES=0 \
		$(VENV)/bin/gunicorn config.wsgi --worker-class gthread --workers 2 --threads 4 \
		--bind $(HOST):$(PORT) --access-logfile - --max-requests 2000 --max-requests-jitter 200

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache

# Performance at hospital scale (bench/README.md): 100,000 generated referrals on the local
# PostgreSQL (as `make serve`), each figure a ratio against a baseline timed in the same run.
# Not part of `make test`. BENCH_ARGS passes options, e.g. BENCH_ARGS="--skip-intake".
.PHONY: bench
bench: $(VENV)/.dev
	$(PY) bench/run.py $(BENCH_ARGS)
