# Every target sets itself up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run api demo test lint bench fuzz soak clean

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

# coverage-guided fuzzing (atheris), FUZZ_SECONDS per target; findings land in .fuzz/<target>/crash-*
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= zip_directory unzip_stream unzip_directory unzip_batch dicom_header hu_decoder multipart range
fuzz: install
	$(BIN)/pip install --quiet -e '.[fuzz]'
	mkdir -p .fuzz
	for t in $(FUZZ_TARGETS); do \
	  (cd .fuzz && ../$(BIN)/python ../tests/fuzz/harness.py $$t -max_total_time=$(FUZZ_SECONDS) \
	    -rss_limit_mb=2048 -timeout=20 -artifact_prefix=$$t- $$t-corpus > $$t.log 2>&1; \
	    grep -E "^fuzz|DONE|Uncaught|Error:|crash-" $$t.log); \
	done
	@if ls .fuzz | grep -E -- "-(crash|oom|timeout|slow-unit)-"; then \
	  echo "findings above: turn each into a test in tests/test_fuzz_regressions.py"; exit 1; fi

# soak benchmark (not a test): 100 loads in the app through Chromium and 1,000 abandoned downloads
soak: install
	$(BIN)/python tests/e2e/soak.py

clean:
	rm -rf $(VENV) *.egg-info
