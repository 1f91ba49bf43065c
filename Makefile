# softmaxkit: the two set-up commands.
#   make demo   creates .venv, installs softmaxkit with what it needs, runs the main job
#   make test   creates or reuses .venv, builds, runs the whole test suite
#   make test-asan  the suite against an AddressSanitizer + UBSan build of the kernels
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Tools installed in the venv (meson, ninja) come first, for the build and rebuilds.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: demo test test-asan bench clean

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

# The C extensions built with -fsanitize=address,undefined (alignment included, every
# report fatal) in their own build directory, installed into $(ASAN)/stage, and the
# suite run against that copy: PYTHONPATH puts it first, MESONPY_EDITABLE_SKIP turns
# off the editable install's import hook (which would rebuild and load the normal
# build), libasan is preloaded because python itself is not instrumented (and
# libstdc++ with it, so that ASan finds the C++ runtime of matplotlib and torch).
# Reports go to $(ASAN)/sanitizer.log.<pid>, printed when the run fails. Left out: the
# one test of where an editable install finds benchmarks/ (the staged copy is not in
# the checkout), and the browser tests (Chromium does not start with libasan preloaded).
ASAN := build-asan
test-asan: $(STAMP)
	test -d $(ASAN) || $(VENV)/bin/meson setup $(ASAN) -Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args="-fno-sanitize-recover=all -fno-omit-frame-pointer"
	$(VENV)/bin/meson compile -C $(ASAN)
	rm -rf $(ASAN)/stage $(ASAN)/sanitizer.log.* && $(VENV)/bin/meson install -C $(ASAN) --destdir stage --quiet
	export PYTHONPATH="$$(dirname "$$(find $(abspath $(ASAN))/stage -type d -path '*-packages/softmaxkit')")" \
		MESONPY_EDITABLE_SKIP="$$($(PY) -c "import sys; print(':'.join({f._build_path for f in sys.meta_path if hasattr(f, '_build_path')}))")" \
		LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libstdc++.so.6)" \
		ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:log_path=$(abspath $(ASAN))/sanitizer.log \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(abspath $(ASAN))/sanitizer.log && \
	$(PY) -c "import softmaxkit._kernels._softmax as m, sys; sys.exit(0 if m.__file__.startswith('$(abspath $(ASAN))/') else 'not the sanitizer build: ' + m.__file__)" && \
	$(PY) -m pytest -q -p no:cacheprovider -o addopts="-ra --strict-markers" tests \
		--deselect tests/test_cli.py::test_bench_finds_the_checkout_from_any_directory \
		--ignore tests/test_explore_browser.py \
		|| { cat $(ASAN)/sanitizer.log.* 2>/dev/null; exit 1; }
	! ls $(ASAN)/sanitizer.log.* 2>/dev/null

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf build $(ASAN) $(VENV) .pytest_cache .hypothesis
