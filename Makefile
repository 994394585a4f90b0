# make demo  -- set up .venv and run the toy translation study (prints a BLEU table)
# make test  -- set up .venv and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv test test-fast demo bench clean

venv:
	VENV=$(VENV) bash scripts/setup_venv.sh

test: venv
	$(PY) -m pytest -q -rs tests

test-fast: venv
	$(PY) -m pytest -q -rs -m "not slow" tests

demo: venv
	VENV_BIN=$(abspath $(VENV))/bin bash recipes/toy/run_all.sh

bench: venv
	$(PY) scripts/bench_criterion.py

clean:
	rm -rf work outputs .pytest_cache
