# Set-up and main entry points. Every target creates .venv with the pinned set when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,export]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --doctest-modules tests src/mtvision

demo: $(STAMP)
	$(BIN)/mtvision train configs/demo.yaml

bench: $(STAMP)
	$(BIN)/python benchmarks/synthetic_speed.py

clean:
	rm -rf $(VENV) runs .cache
