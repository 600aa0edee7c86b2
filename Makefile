# The two commands a new user needs:  make demo   and   make test
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint docs system-deps benchmarks clean

demo: $(VENV)/.demo-installed
	MPLBACKEND=Agg $(PY) examples/peaks_minimize.py

test: $(VENV)/.test-installed system-deps lint
	KERAS_BACKEND=torch MPLBACKEND=Agg $(PY) -m pytest -q -n 2 --dist loadfile tests pyomo_relu

# Style, formatting, types and sizes (configuration in pyproject.toml; sizes: tools/check_sizes.py).
LINTED := pyomo_relu tests benchmarks examples tools docs setup.py
lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy
	$(PY) tools/check_sizes.py

# The documentation site (MkDocs + Material + mkdocstrings) in site/, warnings as errors.  The
# gallery and benchmark pages are generated during the build (docs/gen_pages.py).  `make test`
# builds it too (tests/test_docs.py), so CI checks it.
docs: $(VENV)/.test-installed
	DISABLE_MKDOCS_2_WARNING=true NO_MKDOCS_2_WARNING=1 KERAS_BACKEND=torch MPLBACKEND=Agg $(PY) -m mkdocs build --strict

benchmarks: $(VENV)/.test-installed system-deps
	$(PY) benchmarks/build_time.py --write
	$(PY) benchmarks/bounds.py --write
	$(PY) benchmarks/formulations.py --write

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# The demo needs only the core package and matplotlib, at the pinned versions (pip refuses
# extras such as dask[distributed] in a constraints file, so they are stripped from the copy).
$(VENV)/.demo-installed: $(VENV)/bin/python setup.py requirements.txt
	sed 's/\[[^]]*\]//' requirements.txt > $(VENV)/constraints.txt
	$(PIP) install -c $(VENV)/constraints.txt -e ".[plot]"
	touch $@

# Tests use every extra (keras, torch, sklearn, idaes, scip, dask, ...) and OMLT for comparisons.
$(VENV)/.test-installed: $(VENV)/bin/python setup.py requirements.txt
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps -e .
	touch $@ $(VENV)/.demo-installed

# glpk and CBC come from Debian.
system-deps:
	@command -v glpsol >/dev/null && command -v cbc >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq glpk-utils coinor-cbc >/dev/null; }

clean:
	rm -rf $(VENV) site build dist *.egg-info .pytest_cache .hypothesis examples/output
