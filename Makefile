# The two commands: `make book` and `make test`. Both set themselves up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mmbook-setup
ASSETS := _vendor/.stamp
# Offline by default: the book's own models, no hub traffic. `make book OFFLINE=0` uses hub models.
OFFLINE ?= 1
# CI installs the exact versions in constraints.txt; elsewhere the ranges in code/pyproject.toml apply.
CONSTRAINTS := $(if $(CI),-c constraints.txt,)
JB_FLAGS ?= -W -n --keep-going

export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_DISABLE_TELEMETRY := 1
export MMBOOK_DEMO_MODE := snapshot
ifeq ($(OFFLINE),1)
export HF_HUB_OFFLINE := 1
export MMBOOK_OFFLINE := 1
endif

.PHONY: book test lint unit notebooks colab html-check bench checkpoints clean setup

book: setup
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo "The book is in _build/html/index.html"

test: setup lint unit notebooks
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	$(BIN)/python -m pytest tests/test_html.py -p no:cacheprovider
	@echo "make test: all checks passed"

lint: setup
	$(BIN)/ruff check code tests scripts book/_ext
	# the chapters' code fits the book's column (88 characters) without sideways scrolling
	$(BIN)/ruff check --select E501 --line-length 88 chapters

unit: setup
	$(BIN)/python -m pytest tests --ignore=tests/test_html.py -p no:cacheprovider

# Execute every chapter once with nbmake (on copies, so the stored notebooks stay output-free) and hand
# the executed notebooks to the book's execution cache, so the book build does not run them again.
notebooks: setup
	rm -rf _executed && mkdir -p _executed
	cp chapters/*.ipynb _executed/
	$(BIN)/python -m pytest --nbmake --overwrite --nbmake-timeout=600 _executed -p no:cacheprovider
	$(BIN)/python scripts/prime_cache.py _executed

# The Colab and student editions (colab/, colab/student/): plain notebooks whose prose carries the values of
# the executed chapters in _executed/ (`make notebooks` writes them). tests/test_colab.py keeps them in sync.
colab: notebooks
	$(BIN)/python scripts/colab_edition.py --executed _executed --out colab

bench: setup
	$(BIN)/python scripts/bench.py $(CHAPTERS)

checkpoints: setup
	$(BIN)/python scripts/ship_checkpoints.py $(MODELS)

setup: $(STAMP) $(ASSETS)

$(STAMP): code/pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "error: Python >= 3.11 is needed, but '$(PYTHON)' is $$($(PYTHON) --version 2>&1)." \
	         "Run 'make PYTHON=python3.11 ...' or install a newer Python."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, on its own: the CPU wheel 2.13.0 where it is available, else the platform's default.
	$(BIN)/python -c 'import torch' 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0 || \
	  $(BIN)/python -m pip install -q torch
	$(BIN)/python -m pip install -q $(CONSTRAINTS) -e "code[book,test]"
	touch $(STAMP)

$(ASSETS): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --no-audit --no-fund --silent && $(PYTHON) scripts/vendor_assets.py && touch $(ASSETS); \
	else \
	  echo "WARNING: npm not found: the HTML book will load MathJax and widgets from public CDNs" \
	       "and needs a network to show math and widgets."; \
	fi

clean:
	rm -rf _build _vendor node_modules
