# Two commands do all the set-up on a fresh machine:
#   make run    creates .venv if missing, trains the default experiment (LeNet-5 on the embedded
#               MNIST digits), evaluates it, records it under reports/ and regenerates the report
#   make test   creates .venv if missing and runs the test suite, one pytest-xdist worker per
#               core (each test file on one worker, so its module fixtures are built once)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SEED ?= 0

.PHONY: run test env report models clean

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	@touch $(STAMP)

MAIN_RUN := outputs/main-job/seed$(SEED)

run: $(STAMP)
	rm -rf $(MAIN_RUN)
	$(BIN)/zoo-train record=true seed=$(SEED) hydra.run.dir=$(MAIN_RUN)
	$(BIN)/zoo-eval ckpt_path=$(MAIN_RUN)/checkpoints/best.ckpt output=$(MAIN_RUN)/eval_test.json
	$(BIN)/zoo-report

test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile

report: $(STAMP)
	$(BIN)/zoo-report

models: $(STAMP)
	$(BIN)/zoo-models

clean:
	rm -rf outputs multirun .pytest_cache
