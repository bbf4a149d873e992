# Everything a fresh machine needs: `make run` (service on the embedded model) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# COMMAND=PACKAGE pairs; a path instead of a command checks for that file (the CJK font the report's charts use).
SYSTEM_PACKAGES := nginx=nginx-light openssl=openssl g++=g++ initdb=postgresql runuser=util-linux chromium=chromium chromedriver=chromium-driver \
	/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc=fonts-noto-cjk

.PHONY: install system-packages run proxy test lint bench bench-long bench-gpu eval tiny-model clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian packages the tests use (the real nginx, openssl for its password hashes), installed when missing.
system-packages:
	scripts/install_system_packages.sh $(SYSTEM_PACKAGES)

run: install
	$(BIN)/asr-service serve

# The service and nginx (deploy/nginx.conf) in front of it on http://127.0.0.1:8080; credentials from
# ASR_PROXY_USER and ASR_PROXY_PASSWORD (default asr / change-me).
proxy: install system-packages
	$(BIN)/asr-service proxy

test: install system-packages
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src scripts tests
	$(BIN)/ruff format --check src scripts tests

bench: install
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

bench-gpu: install
	cd scripts && ../$(BIN)/python bench_gpu.py $(BENCH_GPU_ARGS)

bench-long: install
	$(BIN)/python scripts/bench_long_calls.py

eval: install
	$(BIN)/python scripts/eval_accuracy.py $(EVAL_ARGS)

tiny-model: install
	$(BIN)/python scripts/make_tiny_glmasr.py .cache/tiny-glmasr

clean:
	rm -rf $(VENV) .cache .pytest_cache
