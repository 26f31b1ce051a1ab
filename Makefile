# makemore-onnx: `make demo` trains, exports and samples; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch (a plain `torch` from PyPI pulls a multi-GB CUDA build on Linux).
TORCH_SPEC ?= torch==2.13.0
MODEL_DIR ?= out

.PHONY: demo test pytest check typecheck lint docs bench results clean install serve browser web pretrained

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[train,test,plot,serve,docs]"
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

# mypy (one core, about 10 s cold) runs beside pytest, in the gaps pytest leaves (its few lines may land among
# pytest's dots); the run fails if either fails.
test: install lint docs browser web
	$(MAKE) --no-print-directory -j2 typecheck pytest

# Every test, with the line coverage of the shipped packages (in the test processes and the CLIs they start).
pytest: install
	$(BIN)/python -m pytest -q -n auto --cov --cov-report=term

# The edit loop: lint, the type checker and the tests not marked slow (no trained models, browsers or servers).
check: lint typecheck
	$(BIN)/python -m pytest -q -n auto -m "not slow"

# mypy over the packages as installed names (makemore.data, ...: a tree of links to the folders), in one run: the
# torch-free ones strictly, train/ and export/ with mypy's defaults (pyproject.toml's [tool.mypy] and its override),
# and tests/typed_client.py, the API as a client program types it, strictly.
TYPECHECK := build/typecheck
TYPED := data contract runtime train export
typecheck: install
	mkdir -p $(TYPECHECK)/makemore && touch $(TYPECHECK)/makemore/__init__.py
	for pkg in $(TYPED); do ln -sfn ../../../$$pkg $(TYPECHECK)/makemore/$$pkg; done
	ln -sfn ../../tests/typed_client.py $(TYPECHECK)/typed_client.py
	cd $(TYPECHECK) && ../../$(BIN)/mypy --config-file ../../pyproject.toml $(TYPED:%=-p makemore.%) -m typed_client

# The documentation site, built strictly: a broken link or anchor fails the build (-> build/site).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The page's test drives Debian's Chromium (Playwright never downloads a browser here).
browser:
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# onnxruntime-web for mm-web's sites: exactly the files pinned in ort-web/package-lock.json (npm ci; no install
# scripts: mm-web copies only dist files), skipped while they are newer than the lock.
WEB_ORT := ort-web/node_modules/onnxruntime-web/package.json

$(WEB_ORT): ort-web/package.json ort-web/package-lock.json
	command -v npm >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm)
	npm ci --prefix ort-web --no-audit --no-fund --ignore-scripts
	touch $@

web: $(WEB_ORT)

# The HTTP API and page on http://127.0.0.1:8000 for the demo model (trained first if missing).
serve: install
	test -f $(MODEL_DIR)/model.onnx || $(MAKE) demo
	$(BIN)/mm-serve $(MODEL_DIR)/model.onnx

# Speed, memory, footprint and training time, measured side by side -> docs/results.md (about 20 minutes, models trained first if missing).
bench: install
	$(BIN)/python bench/speed.py

# Train every kind with its defaults (transformer: about 14 minutes, the others 5 or less), export float32 and int8, print the table.
results: install
	$(BIN)/python bench/results.py

# The model shipped in the package (runtime/pretrained/names.onnx), which mm-gen, mm-serve and mm-web sample when
# given no model file: the transformer's `best` preset (eight blocks: the best test loss measured), exported as int8
# to fit 1 MB (0.64 MB), trained on the bundled names with seed 1337 (about 16 minutes on a quiet 2-core machine).
pretrained: install
	mkdir -p build/pretrained
	$(BIN)/mm-train transformer --preset best --seed 1337 --out build/pretrained/names.pt
	$(BIN)/mm-export build/pretrained/names.pt runtime/pretrained/names.onnx --quantize int8

clean:
	rm -rf $(VENV) $(MODEL_DIR) build *.egg-info ort-web/node_modules
