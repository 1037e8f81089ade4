# Two commands are the whole set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_DEMO := $(VENV)/.installed-demo
STAMP_TEST := $(VENV)/.installed-test

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# hatch_build.py compiles the native edge reader at install: a change to it or to its source
# installs again.
NATIVE := hatch_build.py src/wattprint/sensors/_edge.c

$(STAMP_DEMO): $(BIN)/python pyproject.toml $(NATIVE)
	$(BIN)/pip install --quiet -e '.[demo]'
	touch $@

# The tests load real models of every supported framework, CPU builds.
TEST_EXTRAS := dev,nvidia,torch-cpu,onnx,sklearn,keras,tensorflow-cpu,hf,datasets,images,audio,pandas,torchao,hf-trainer,mlflow,prometheus,notebook,lightning,ray

# --no-compile: pip would byte-compile every module of every framework (about two minutes on
# two cores); the tests compile only what they import, once, as they import it.
$(STAMP_TEST): $(BIN)/python pyproject.toml $(NATIVE)
	$(BIN)/pip install --quiet --no-compile -e '.[$(TEST_EXTRAS)]'
	touch $@ $(STAMP_DEMO)

demo: $(STAMP_DEMO)
	$(BIN)/wattprint sensors
	$(BIN)/wattprint demo

lint: $(STAMP_TEST)
	$(BIN)/ruff check src tests benchmarks hatch_build.py
	$(BIN)/mypy

# Two workers: the CI machine has two cores, and most tests wait on subprocesses. Bytecode is
# written (PYTHONDONTWRITEBYTECODE emptied): the install left it to the first import. mypy
# (two minutes on one core with a cold cache) runs beside the tests, in their waits: its report
# follows theirs, and either failing fails the target.
test: $(STAMP_TEST)
	$(BIN)/ruff check src tests benchmarks hatch_build.py
	@echo "$(BIN)/mypy > $(VENV)/mypy.log, beside the tests"
	@$(BIN)/mypy > $(VENV)/mypy.log 2>&1 & types=$$!; \
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n 2; tests=$$?; \
	wait $$types; typed=$$?; echo "mypy:"; cat $(VENV)/mypy.log; \
	[ $$tests -eq 0 ] && [ $$typed -eq 0 ]

bench: $(STAMP_TEST)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/wattprint/sensors/_edge*.so
