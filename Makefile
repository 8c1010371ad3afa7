# tissuebert: `make demo` and `make test` work from a fresh clone with Python >= 3.10 and pip.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
DEMO_OUT ?= demo
PY  := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install demo lint browser test test-fast mutation bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tissuebert demo --out $(DEMO_OUT) --force

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

# tests/benchmark/test_report_browser.py renders the HTML report in a real browser: Debian's
# chromium, installed here when it is missing and this is a root shell with apt-get (CI's fresh
# machine); elsewhere install it yourself, or that test skips (and fails on CI).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      echo "installing chromium (apt-get) for the report-rendering test"; \
	      apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; } || \
	      echo "could not install chromium: the report-rendering test will skip (fail on CI)"; \
	    else echo "chromium not found (apt-get install chromium): the report-rendering test will skip (fail on CI)"; fi; }

test: lint browser
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# hand-written mutants (tests/mutants.py: each must turn its tests red), then cosmic-ray per core
# module (tests/mutation.py; hours on two cores; docs/testing.md holds the scores)
mutation: $(STAMP)
	$(PIP) install --quiet -e ".[test,mutation]"
	$(PY) tests/mutants.py
	$(PY) tests/mutation.py

bench: $(STAMP)
	$(PIP) install --quiet -e ".[test,bench]"
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mutation
