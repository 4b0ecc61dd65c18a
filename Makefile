# Two commands do everything: `make demo` and `make test`. Both install first if needed.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install demo test test-all clean

install:
	@VENV=$(abspath $(VENV)) bash tools/install_env.sh

demo: install
	$(PY) tools/quickstart.py

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf build output
