# Set-up and entry points. `make demo` and `make test` both install into .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo demo-quick test test-fast test-openclip bench clean

install: $(STAMP)

# torch==2.13.0 only when no torch is importable: on CPU machines pip takes the CPU wheel on disk,
# where a bare `torch` would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

demo: install
	$(VENV)/bin/focus-data demo -o runs/demo

# a first look in a few minutes: 6,000 training images, 800 steps per training (docs/demo.md)
demo-quick: install
	$(VENV)/bin/focus-data demo --quick -o runs/demo-quick

# the suite on every core (pytest-xdist; each test has its own tmp dirs and loopback ports), then
# the open_clip tests in their own venv (they skip in .venv, which has no open_clip)
test: install
	$(PY) -m pytest -q -n auto tests
	$(MAKE) test-openclip

# the same without the tests marked slow (the demo, the learning, resume-after-kill and DDP runs, the world probe's training)
test-fast: install
	$(PY) -m pytest -q -n auto -m "not slow" tests

# open_clip needs torchvision, which must match torch exactly (PyPI's does not import beside .venv's
# torch 2.13.0) and which would change transformers' default image processors for every test in .venv:
# so a venv of its own, torch and torchvision pinned as a pair first (pip takes them from disk here).
OC_VENV  := .venv-openclip
OC_PY    := $(OC_VENV)/bin/python
OC_STAMP := $(OC_VENV)/.installed

$(OC_STAMP): pyproject.toml
	@test -x $(OC_PY) || $(PYTHON) -m venv $(OC_VENV)
	$(OC_PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(OC_PY) -m pip install -q -e ".[open-clip]" "pytest>=7"
	@touch $(OC_STAMP)

# the tests that need open_clip (marked openclip), in .venv-openclip
test-openclip: $(OC_STAMP)
	$(OC_PY) -m pytest -q -p no:xdist -m openclip tests/eval/test_open_clip.py

bench: install
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf runs/demo
