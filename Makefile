# FabLens: the README's two commands are `make serve` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
PORT   ?= 8000

.PHONY: serve serve-venv install install-dev browser postgres redis test test-fast train evaluate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Serving: requirements.txt only (what Render installs), then gunicorn on 127.0.0.1:$(PORT).
install: $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .

# The same start command as render.yaml; its start hook migrates the database once.
serve: install
	$(BIN)/gunicorn -c python:webapp.gunicorn_conf --workers 1 --threads 4 --timeout 120 --max-requests 2000 --max-requests-jitter 200 \
	  --bind 127.0.0.1:$(PORT) 'webapp:create_app()'

# requirements.txt alone in .venv-serve (what Render installs), for the memory benchmark:
# .venv-serve/bin/python -m benchmarks.server_memory (the dev extras add scikit-learn and
# pyarrow to the server's imports, about 170 MiB that a deploy never holds).
serve-venv:
	$(PYTHON) -m venv .venv-serve
	.venv-serve/bin/pip install --quiet -r requirements.txt

# Tests: the dev extra (training libraries, pytest, Playwright) plus Debian's Chromium.
install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the page tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); }

# A throwaway PostgreSQL server on 127.0.0.1:55432 (Debian's package, installed if missing).
postgres:
	@bash .ci/postgres.sh

# A throwaway Redis server on 127.0.0.1:56379 for the job queue's tests (Debian's package).
redis:
	@bash .ci/redis.sh

# Every test, the database tests on SQLite and on the PostgreSQL server started here, the
# job queue's Redis path on the redis-server started here (Debian's, installed if missing).
test: install-dev browser
	url=$$(bash .ci/postgres.sh) && redis=$$(bash .ci/redis.sh) && \
	  FABLENS_TEST_POSTGRES_URL=$$url FABLENS_TEST_REDIS_URL=$$redis $(BIN)/python -m pytest -n 2 --durations=10

test-fast: install-dev
	$(BIN)/python -m pytest -n 2 -m "not pages and not slow"

# Data: $FABLENS_DATA_DIR, else ../shared/data (the default lives in pipelines/core/locations.py).
train: install-dev
	$(BIN)/python -m pipelines.train sensor

evaluate: install-dev
	$(BIN)/python -m pipelines.evaluate sensor

bench: install-dev
	$(BIN)/python -m benchmarks.sensor_bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache instance
