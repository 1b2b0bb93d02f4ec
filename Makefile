# The two commands of the README. Both create or reuse .venv/ (tools/setup_env.sh).
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONHASHSEED := 0

.PHONY: setup demo test
setup:
	bash tools/setup_env.sh

demo: setup
	bash tools/demo.sh

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)
