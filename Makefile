# Everything a fresh machine needs: `make run` (service on the embedded model) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run proxy test lint bench bench-long tiny-model clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/asr-service serve

# nginx (deploy/nginx.conf) on http://127.0.0.1:8080 in front of `make run`; credentials from ASR_PROXY_USER and
# ASR_PROXY_PASSWORD (default asr / change-me).
proxy: install
	$(BIN)/asr-service proxy

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src scripts tests
	$(BIN)/ruff format --check src scripts tests

bench: install
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

bench-long: install
	$(BIN)/python scripts/bench_long_calls.py

tiny-model: install
	$(BIN)/python scripts/make_tiny_glmasr.py .cache/tiny-glmasr

clean:
	rm -rf $(VENV) .cache .pytest_cache
