# mgan — the two commands a new user types:
#   make demo   set up .venv, fetch the default weights, restore the bundled example faces into demo-output/
#   make test   set up .venv and run the test suite
#   make gpu-check   on a CUDA machine: cuda tests, an example inversion and the benchmark, results appended to
#                    BENCHMARKS.md (without CUDA it says so and exits 0)
# Both are idempotent: the environment is rebuilt only when requirements.lock or pyproject.toml change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all demo test lint bench gpu-check clean

all: test

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mgan weights fetch dcgan64-digiface vgg16-imagenet alexnet-imagenet
	$(BIN)/mgan invert examples/faces -o demo-output --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest -q --doctest-modules mgan_cli tests

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m bench

gpu-check: $(STAMP)
	$(BIN)/python -m bench.gpu_check

clean:
	rm -rf $(VENV) demo-output .pytest_cache
