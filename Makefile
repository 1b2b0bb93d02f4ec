# The two commands of the README. Both create or reuse .venv/ (.dev_scripts/setup_env.sh).
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONHASHSEED := 0

# `make bundle`: the offline bundle (docs/gpu.md), e.g.
#   make bundle BUNDLE=dist/bundle-py312 BUNDLE_ARGS="--python 3.12"
BUNDLE ?= dist/bundle
BUNDLE_ARGS ?=

.PHONY: setup demo test bundle
setup:
	bash .dev_scripts/setup_env.sh

demo: setup
	bash tools/toy_run.sh detection

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

bundle: setup
	PYTHON=$(PY) bash .dev_scripts/make_bundle.sh $(BUNDLE_ARGS) $(BUNDLE)
