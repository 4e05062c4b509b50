# Quick start: `make demo` runs the main job on a simulated plate; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench clean ui

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash demo/run_demo.sh

test: install lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/pip install --quiet -e '.[dev,bench]'  # the peers measured beside us
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/hdf5_settings.py
	$(BIN)/python benchmarks/register_files.py
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/conversion.py
	$(BIN)/python benchmarks/ome_zarr.py
	$(BIN)/python benchmarks/corilla.py
	$(BIN)/python benchmarks/pyramid.py
	$(BIN)/python benchmarks/jterator.py
	$(BIN)/python benchmarks/tiles.py
	$(BIN)/python benchmarks/feature_download.py
	$(BIN)/python benchmarks/viewer.py
	$(BIN)/python benchmarks/ui_upload.py
	$(BIN)/python benchmarks/db_writes.py
	$(BIN)/python benchmarks/scale_model.py

# The browser app: lint, type-check and build tmui/ into tmserver/webapp/ (needs Node.js;
# the built app is committed, so installing and running TissueMAPS does not).
ui:
	cd tmui && npm ci --no-audit --no-fund && npm run check && npm run build

clean:
	rm -rf $(VENV) .demo .pytest_cache .pytest_artifacts .ruff_cache *.egg-info
