# Every target sets itself up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run api demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/webviewer --port 8080 --server

api: install
	$(BIN)/webviewer-api

# one session process per visitor behind Apache (needs apache2); see README "Demo deployment"
demo: install
	$(BIN)/webviewer-demo --port 8080

lint: install
	$(BIN)/ruff check webviewer tests

test: install
	$(BIN)/ruff check webviewer tests
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/webviewer-bench --ct sample-seed --runs 5 --rate unlimited,100mbit,balanced --markdown docs/benchmarks.md

clean:
	rm -rf $(VENV) *.egg-info
