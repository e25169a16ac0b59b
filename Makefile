# The two commands: `make demo` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean ray-up ray-down

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# The tests also train a detector: the train extra's PyTorch, pinned here to the
# CPU build this machine's package index holds (the extra itself accepts any >= 2.2).
TORCH_CPU ?= torch==2.13.0
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet '$(TORCH_CPU)'
	$(BIN)/pip install --quiet -e '.[test,train]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/irbis demo demo-project

# Debian's Chromium (browser tests, HTML report), poppler (PDF pages) and
# Tesseract (times read from photos' info bars) for the tests.
SYSTEM_TOOLS := /usr/bin/chromium /usr/bin/pdftoppm /usr/bin/tesseract
$(SYSTEM_TOOLS):
	@command -v apt-get >/dev/null || { echo "install chromium, poppler-utils and tesseract-ocr, then rerun"; exit 1; }
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO apt-get install -y -q chromium poppler-utils fonts-dejavu-core tesseract-ocr >/dev/null 2>&1 || \
	{ $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium poppler-utils fonts-dejavu-core tesseract-ocr >/dev/null; }

test: $(VENV)/.installed-test $(SYSTEM_TOOLS)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench

bench: $(VENV)/.installed
	$(BIN)/python bench/ingest_throughput.py

# A Ray cluster on this machine (head with RAY_WORKERS worker processes) for
# `irbis detect/identify --ray 127.0.0.1:6379`; see scripts/ray-local.
RAY_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
ray-up: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[ray]'
	scripts/ray-local start --workers $(RAY_WORKERS)

ray-down:
	scripts/ray-local stop

clean:
	rm -rf $(VENV) demo-project build src/*.egg-info
