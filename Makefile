# The commands of the README: thin calls of the nox sessions of noxfile.py,
# run by nox and uv from their own venv, made once (their versions: those of
# requirements/current.txt).
CACHE := $(or $(GLNET_MM_CACHE),$(HOME)/.cache/glnet_mm)
TOOLS := $(CACHE)/tools
NOX := $(TOOLS)/bin/nox --envdir $(CACHE)/nox
export PYTHONHASHSEED := 0

# `make test`: one pytest-xdist worker a core (at most 8), a test file per worker
# (its module fixtures built once), the longest files first (tests/conftest.py)
PYTEST_WORKERS ?= $(shell n=$$(nproc); echo $$(( n < 8 ? n : 8 )))

# `make bundle`: the offline bundle (docs/gpu.md), e.g.
#   make bundle BUNDLE=dist/bundle-py312 BUNDLE_ARGS="--python 3.12"
BUNDLE ?= dist/bundle
BUNDLE_ARGS ?=

.PHONY: setup demo test test-stacks bundle
$(TOOLS)/installed: requirements/current.txt
	test -x $(TOOLS)/bin/python || python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --disable-pip-version-check nox uv \
	  'tomli; python_version < "3.11"' -c requirements/current.txt
	touch $@

# `make setup SETUP_ARGS=--system-torch PYTHON=/path/to/python`: on that torch
setup: $(TOOLS)/installed
	$(NOX) -s setup -- $(SETUP_ARGS)

demo: setup
	bash tools/misc/toy_run.sh detection

test: setup
	.venv/bin/python -m pytest tests -m 'not stacks' -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# the classic, newest and timm stacks' checks in their venvs, then the tests that
# build an environment of their own (the bundle, the GPU check's dry run)
test-stacks: setup
	$(NOX) -s classic newest timm
	.venv/bin/python -m pytest tests -m stacks -q -ra $(PYTEST_ARGS)

bundle: setup
	$(NOX) -s bundle -- $(BUNDLE) $(BUNDLE_ARGS)
