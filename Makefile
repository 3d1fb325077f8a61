# FabLens: the README's two commands are `make serve` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
PORT   ?= 8000
DATA   ?= $(or $(FABLENS_DATA_DIR),../shared/data)

.PHONY: serve install install-dev browser test test-fast train evaluate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Serving: requirements.txt only (what Render installs), then gunicorn on 127.0.0.1:$(PORT).
install: $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .

serve: install
	$(BIN)/gunicorn --workers 2 --threads 2 --timeout 120 --bind 127.0.0.1:$(PORT) 'webapp:create_app()'

# Tests: the dev extra (training libraries, pytest, Playwright) plus Debian's Chromium.
install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the page tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); }

test: install-dev browser
	$(BIN)/python -m pytest -n 2 --durations=10

test-fast: install-dev
	$(BIN)/python -m pytest -n 2 -m "not pages and not slow"

train: install-dev
	$(BIN)/python -m pipelines.train sensor --data $(DATA)

evaluate: install-dev
	$(BIN)/python -m pipelines.evaluate sensor --data $(DATA)

bench: install-dev
	$(BIN)/python -m benchmarks.sensor_bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache instance
