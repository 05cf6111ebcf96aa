# ssd_edu commands. `make test` is what CI runs (.ci/run); README.md lists the rest.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Pinned for reproducible runs; pip picks the build that fits the machine (CPU, CUDA, MPS).
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
# JupyterLab refuses to start as root (a container's usual user) unless given --allow-root
USER_ID  ?= $(shell id -u)
LAB_ARGS ?= $(if $(filter 0,$(USER_ID)),--allow-root)

.PHONY: help venv lint test test-fast test-browser browser-env lab bench demo notebooks assignments clean

help:
	@echo "make test         lint, unit tests and every notebook (smoke mode), as CI does"
	@echo "make demo         train the small SSD on synthetic shapes (CPU), report mAP, draw detections"
	@echo "make test-browser the explorers in JupyterLab, driven in Chromium (needs browser-env)"
	@echo "make browser-env  install playwright into .venv (chromium itself: apt-get install chromium)"
	@echo "make lab          open JupyterLab on notebooks/"
	@echo "make bench        run benchmarks/ and print one table"
	@echo "make notebooks    re-execute notebooks in full mode and store their outputs and figures"
	@echo "make assignments  write student versions of the notebooks to assignments/"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check ssd_edu tests benchmarks tools notebooks

# The notebooks run under nbval in lax mode: every cell must run, and the asserts inside them check
# their claims. SSD_EDU_SMOKE=1 shrinks heavy cells to small but complete versions.
test: lint
	SSD_EDU_SMOKE=1 MPLBACKEND=Agg $(BIN)/python -m pytest -p no:cacheprovider \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=300 tests notebooks $(PYTEST_ARGS)

test-fast: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest -p no:cacheprovider tests $(PYTEST_ARGS)

# JupyterLab in Chromium: every explorer run, moved and checked (tests/browser/). It starts its own
# JupyterLab on 127.0.0.1 and stops it; screenshots go to the folder it prints.
test-browser: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider -m browser -s tests/browser $(PYTEST_ARGS)

# torch stays the pinned build: pip must not resolve it again for the extra
browser-env: $(STAMP)
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e ".[dev,browser]"

lab: $(STAMP)
	$(BIN)/jupyter lab $(LAB_ARGS) notebooks/

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

demo: $(STAMP)
	$(BIN)/python -m ssd_edu.train --demo

notebooks: $(STAMP)
	$(BIN)/python tools/run_notebooks.py $(NB)

assignments: $(STAMP)
	$(BIN)/python -m ssd_edu.exercises make-assignments notebooks assignments

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache assignments
