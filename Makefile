# Both targets build .venv themselves; the torch 2.11 / torchvision 0.26 / torchaudio 2.11 stack is pinned in pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: test demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[demo]"
	touch $@

# The project's tests, then transformers' own common test mixins run against ChatBridge (their source comes from the
# transformers source distribution on PyPI, unpacked in a temporary folder: tests/transformers_common/).
test: $(VENV)/.installed-dev
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest
	HF_HUB_OFFLINE=1 $(BIN)/python tests/transformers_common/run_common_mixins.py

demo: $(VENV)/.installed-demo
	HF_HUB_OFFLINE=1 $(BIN)/chatbridge demo --out demo_run

# Every script in bench/, then bench/RESULTS.md rewritten (~10 min on 2 CPU cores). Options of bench/run_all.py go
# in BENCH_ARGS, e.g. `make bench BENCH_ARGS="--threads 1"` on a machine shared with other work.
bench: $(VENV)/.installed-dev
	HF_HUB_OFFLINE=1 $(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo_run
