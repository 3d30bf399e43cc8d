# Set-up and main entry points. Every target creates .venv with the pinned set when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test demo bench clean

venv: $(STAMP)

# One line per step, and pip's own progress for the long one (about 100 s on a fresh machine).
$(STAMP): pyproject.toml constraints.txt
	@echo "[1/3] virtual environment $(VENV) ($(PYTHON))"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "[2/3] pip upgrade"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "[3/3] mtvision and its pinned dependencies (constraints.txt): torch, torchvision, timm, ..."
	@$(BIN)/python -m pip install --progress-bar on -c constraints.txt -e ".[test,export]"
	@touch $(STAMP)
	@echo "installed: $(VENV) is ready"

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --doctest-modules tests src/mtvision

demo: $(STAMP)
	$(BIN)/mtvision train configs/demo.yaml

bench: $(STAMP)
	$(BIN)/python benchmarks/synthetic_speed.py

clean:
	rm -rf $(VENV) runs .cache
