# softmaxkit: the two set-up commands.
#   make demo   creates .venv, installs softmaxkit with what it needs, runs the main job
#   make test   creates or reuses .venv, builds, runs the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Tools installed in the venv (meson, ninja) come first, for the build and rebuilds.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: demo test bench clean

# The editable install rebuilds the C extension on import whenever a source
# changes, so it needs the build tools in the environment (no build isolation).
$(STAMP): pyproject.toml meson.build src/softmaxkit/meson.build
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "meson-python>=0.15" "meson>=1.1" ninja "numpy>=1.24"
	$(PY) -m pip install --quiet "torch==2.13.0" || $(PY) -m pip install --quiet "torch>=2.1"
	$(PY) -m pip install --quiet --no-build-isolation --editable ".[test,explore]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf build $(VENV) .pytest_cache .hypothesis
