# makemore-onnx: `make demo` trains, exports and samples; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch (a plain `torch` from PyPI pulls a multi-GB CUDA build on Linux).
TORCH_SPEC ?= torch==2.13.0
MODEL_DIR ?= out

.PHONY: demo test lint bench clean install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[train,test]"
	touch $@

install: $(VENV)/.installed

demo: install
	mkdir -p $(MODEL_DIR)
	$(BIN)/mm-train mlp --out $(MODEL_DIR)/model.pt
	$(BIN)/mm-export $(MODEL_DIR)/model.pt $(MODEL_DIR)/model.onnx
	$(BIN)/mm-gen $(MODEL_DIR)/model.onnx --n 20

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/train_bench.py

clean:
	rm -rf $(VENV) $(MODEL_DIR) build *.egg-info
