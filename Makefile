# The commands of the README. Each creates or reuses .venv/ (.dev_scripts/setup_env.sh).
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONHASHSEED := 0

# `make bundle`: the offline bundle (docs/gpu.md), e.g.
#   make bundle BUNDLE=dist/bundle-py312 BUNDLE_ARGS="--python 3.12"
BUNDLE ?= dist/bundle
BUNDLE_ARGS ?=

# `make test`: one pytest-xdist worker a core (at most 8), a test file per worker
# (its module fixtures built once), the longest files first (tests/conftest.py)
PYTEST_WORKERS ?= $(shell n=$$(nproc); echo $$(( n < 8 ? n : 8 )))

# `make test-stacks`: the classic and newest stacks' checks (README, Install),
# each stack's venv built or reused in ~/.cache/glnet_mm/stacks (.dev_scripts/stacks.py)
STACKS ?= classic newest

.PHONY: setup demo test test-stacks bundle
setup:
	bash .dev_scripts/setup_env.sh

demo: setup
	bash tools/misc/toy_run.sh detection

test: setup
	$(PY) -m pytest tests -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test-stacks: setup
	$(PY) .dev_scripts/stacks.py check $(STACKS) --reference-python $(PY)

bundle: setup
	PYTHON=$(PY) bash .dev_scripts/make_bundle.sh $(BUNDLE_ARGS) $(BUNDLE)
