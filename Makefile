# The two commands: `make book` and `make test`. Both set themselves up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ASSETS := _vendor/.stamp
# Offline by default: the book's own models, no hub traffic. `make book OFFLINE=0` uses hub models.
OFFLINE ?= 1
# The versions CI tests, pinned in constraints.txt, by default; `make UNPINNED=1 test` installs the newest
# that code/pyproject.toml allows (the weekly drift check in .github/workflows/weekly.yml).
UNPINNED ?= 0
ifeq ($(UNPINNED),1)
STAMP := $(VENV)/.mmbook-setup-unpinned
PIP_PINS := --upgrade --upgrade-strategy eager
INSTALL_TORCH := $(BIN)/python -m pip install -q --upgrade torch
else
STAMP := $(VENV)/.mmbook-setup
PIP_PINS := -c constraints.txt
# torch first, on its own: the tested version where it is available, else the platform's default.
INSTALL_TORCH := $(BIN)/python -c 'import torch' 2>/dev/null || \
  $(BIN)/python -m pip install -q $(shell grep -m1 '^torch==' constraints.txt) || $(BIN)/python -m pip install -q torch
endif
# make test needs Chromium (pictures of the demos, the HTML book opened offline) and stops without it,
# unless SKIP_BROWSER=1: then it skips those checks and says how many.
SKIP_BROWSER ?= 0
HAS_BROWSER := $(BIN)/python -c 'import sys; from mmbook.demos import chromium_path; sys.exit(not chromium_path())'
NO_BROWSER := no Chromium found (Debian: sudo apt install chromium; Ubuntu: sudo snap install chromium; macOS, \
  or a browser off PATH: set MMBOOK_CHROMIUM to its binary; see README.md)
LOGS := _build/logs
JB_FLAGS ?= -W -n --keep-going

export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_DISABLE_TELEMETRY := 1
export MMBOOK_DEMO_MODE := snapshot
# Claims about measured outcomes (mmbook.book.claim) fail here; a reader's run only prints a note.
export MMBOOK_STRICT := 1
ifeq ($(OFFLINE),1)
export HF_HUB_OFFLINE := 1
export MMBOOK_OFFLINE := 1
endif

.PHONY: book test browser lint unit notebooks online colab html-check bench bench-serving bench-search checkpoints clean setup

book: setup
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo "The book is in _build/html/index.html"
	@$(HAS_BROWSER) || echo "WARNING: the book has no pictures of its demos (notes stand in their place):" \
	  "$(NO_BROWSER). Install it, then run 'rm -rf _build && make book' (the execution cache keeps the notes)."

test: setup browser lint unit notebooks online
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	@mkdir -p $(LOGS)
	set -o pipefail; $(BIN)/python -m pytest tests/test_html.py -p no:cacheprovider | tee $(LOGS)/html.log
	@skipped=$$(awk -F'[][]' '/^SKIPPED \[[0-9]+\].*Chromium/ {n += $$2} END {print n + 0}' $(LOGS)/unit.log $(LOGS)/html.log); \
	  if [ "$$skipped" -gt 0 ]; then \
	    echo "make test: all checks passed, but $$skipped browser checks were SKIPPED (SKIP_BROWSER=1) and the book" \
	         "has no demo pictures: $(NO_BROWSER)."; \
	  else echo "make test: all checks passed"; fi

# Stop at once when make test could not run its browser checks, unless they are skipped on purpose.
browser: setup
	@$(HAS_BROWSER) || [ "$(SKIP_BROWSER)" = 1 ] || { echo "error: make test needs Chromium for its browser checks" \
	  "(pictures of the demos, the HTML book opened offline): $(NO_BROWSER). Or run 'make SKIP_BROWSER=1 test'" \
	  "to skip those checks."; exit 1; }

lint: setup
	$(BIN)/ruff check code tests scripts book/_ext
	# the chapters' code fits the book's column (88 characters) without sideways scrolling
	$(BIN)/ruff check --select E501 --line-length 88 chapters

# The unit tests on UNIT_JOBS workers (pytest-xdist; most tests wait on servers, browsers and subprocesses),
# then the tests marked `benchmark` (timing targets) alone, so that no other test competes with them.
UNIT_JOBS ?= 2
unit: setup
	@mkdir -p $(LOGS)
	set -o pipefail; $(BIN)/python -m pytest tests --ignore=tests/test_html.py -p no:cacheprovider -n $(UNIT_JOBS) \
	  -m "not benchmark" | tee $(LOGS)/unit.log
	set -o pipefail; $(BIN)/python -m pytest tests --ignore=tests/test_html.py -p no:cacheprovider -m benchmark \
	  | tee -a $(LOGS)/unit.log

# Execute every chapter once with nbmake (on copies, so the stored notebooks stay output-free) and hand
# the executed notebooks to the book's execution cache, so the book build does not run them again. The
# chapters that measure no speed run two at a time, each kernel on one thread (their training runs on one
# thread anyway, inside env.training_state, so their numbers do not change); the chapters whose claims are
# about speed then run alone, on every core. `make bench` times every chapter alone.
PARALLEL_CHAPTERS := 05_fusion 08_pretrained 11_multimodal_llm 06_contrastive 14_trends_challenges \
                     01_background 02_core_concepts
SERIAL_CHAPTERS := $(filter-out $(PARALLEL_CHAPTERS),$(basename $(notdir $(wildcard chapters/*.ipynb))))
notebooks: setup
	rm -rf _executed && mkdir -p _executed
	cp chapters/*.ipynb _executed/
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest --nbmake --overwrite --nbmake-timeout=600 -n 2 -p no:cacheprovider \
	  $(PARALLEL_CHAPTERS:%=_executed/%.ipynb)
	$(BIN)/python -m pytest --nbmake --overwrite --nbmake-timeout=600 -p no:cacheprovider \
	  $(SERIAL_CHAPTERS:%=_executed/%.ipynb)
	$(BIN)/python scripts/prime_cache.py _executed

# The chapters with an online branch, executed once more on a simulated hub (mmbook.simulated_hub: every hub
# id is a small checkpoint of the real classes with random weights; no network), on copies in _online/ (not
# _executed/, which feeds the book), sharing the model cache that `notebooks` filled; ONLINE_JOBS chapters at
# a time, longest first, each on one thread (OMP_NUM_THREADS=1: two jobs never fight over two cores). Every
# online branch must run to its end. The pass checks code paths: claims about measured outcomes only print a
# note here (`notebooks` holds them), and no pictures of the apps are taken (MMBOOK_CHROMIUM names no
# browser; each app still starts and answers its example call). The executed copies stay in _online/.
ONLINE_CHAPTERS := 06_contrastive 10_project_app 12_applications 01_background 08_pretrained 09_gradio \
                   03_encoders 11_multimodal_llm
ONLINE_JOBS ?= 2
# one chapter's output at a time where make can hold it back (GNU make 4; macOS ships 3.81)
OUTPUT_SYNC := $(if $(filter 3.%,$(MAKE_VERSION)),,-O)
online: setup
	rm -rf _online && mkdir -p _online
	$(MAKE) --no-print-directory -j$(ONLINE_JOBS) $(OUTPUT_SYNC) $(ONLINE_CHAPTERS:%=_online/%.ipynb)

_online/%.ipynb: chapters/%.ipynb
	cp $< $@
	env -u MMBOOK_OFFLINE HF_HUB_OFFLINE=1 MMBOOK_SIMULATE_HUB=1 MMBOOK_STRICT=0 MMBOOK_CHROMIUM=none \
	  OMP_NUM_THREADS=1 $(BIN)/python -m pytest --nbmake --overwrite --nbmake-timeout=600 $@ -p no:cacheprovider \
	  -q --durations=1

# The Colab and student editions (colab/, colab/student/): plain notebooks whose prose carries the values of
# the executed chapters in _executed/ (`make notebooks` writes them). tests/test_colab.py keeps them in sync.
colab: notebooks
	$(BIN)/python scripts/colab_edition.py --executed _executed --out colab

bench: setup
	$(BIN)/python scripts/bench.py $(CHAPTERS)

# Chapter 13's full serving sweep: every variant of the assistant's /best_match in its own process, loaded by
# locust (headless, its own process) at 1, 8, 32 and 64 clients; about ten minutes. Writes _build/serve_bench.
bench-serving: setup
	$(BIN)/python scripts/serve_bench.py --out _build/serve_bench

# Chapter 12's full search sweep: exact, IVF, HNSW and IVF-PQ indexes from 10k to 1M vectors on one FAISS thread,
# about 15 minutes; exits 1 if the recall/speed target is missed. Writes _build/search_bench and the copy the
# chapter plots (code/mmbook/experiments/search_bench.json).
bench-search: setup
	$(BIN)/python scripts/search_bench.py --threads 1 --ship --out _build/search_bench

checkpoints: setup
	$(BIN)/python scripts/ship_checkpoints.py $(MODELS)

setup: $(STAMP) $(ASSETS)

$(STAMP): code/pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "error: Python >= 3.11 is needed, but '$(PYTHON)' is $$($(PYTHON) --version 2>&1)." \
	         "Run 'make PYTHON=python3.11 ...' or install a newer Python."; exit 1; }
	@if [ -e $(VENV) ] && ! $(BIN)/python -m pip --version >/dev/null 2>&1; then \
	  echo "error: $(VENV) is broken: it has no working pip (made without Python's venv module, python3-venv?)." \
	       "Remove it with 'rm -rf $(VENV)' and run make again."; exit 1; fi
	@if [ ! -e $(VENV) ]; then \
	  $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV); \
	  echo "error: '$(PYTHON) -m venv' could not make a virtual environment with pip. Install Python's venv" \
	       "module: on Debian/Ubuntu 'sudo apt install python3-venv' (python3.X-venv for a python3.X);" \
	       "see the prerequisites in README.md."; exit 1; }; fi
	$(BIN)/python -m pip install -q --upgrade pip
	$(INSTALL_TORCH)
	$(BIN)/python -m pip install -q $(PIP_PINS) -e "code[book,test]"
	rm -f $(VENV)/.mmbook-setup*
	touch $(STAMP)

$(ASSETS): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --no-audit --no-fund --silent && $(PYTHON) scripts/vendor_assets.py && touch $(ASSETS); \
	else \
	  echo "WARNING: npm not found: the HTML book will load MathJax and widgets from public CDNs" \
	       "and needs a network to show math and widgets."; \
	fi

clean:
	rm -rf _build _executed _online _vendor node_modules
