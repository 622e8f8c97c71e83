# facerec: `make install`, then `make test`; `make demo` runs the whole system in miniature.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STORE  ?= runs/store
SOURCE ?=
LFW    ?= ../shared/data/lfw

.PHONY: install test test-fast bench bench-landmarks bench-reader bench-train bench-ablation demo clean help

help:
	@echo "make install   create $(VENV) and install facerec with its pinned dependencies"
	@echo "make test      run the whole pytest suite (slow LFW integration tests included)"
	@echo "make test-fast run only the fast unit tests"
	@echo "make bench     run the benchmarks and write benchmarks/results/*.json"
	@echo "make demo      the whole system in miniature (SOURCE=DIR for a local ImageFolder)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'

test:
	$(BIN)/python -m pytest

test-fast:
	$(BIN)/python -m pytest -m "not slow"

bench: bench-landmarks bench-reader bench-train

bench-landmarks:
	$(BIN)/python -m benchmarks.bench_landmarks --lfw $(LFW)

bench-reader:
	$(BIN)/python -m benchmarks.bench_reader --lfw $(LFW)

bench-train:
	$(BIN)/python -m benchmarks.bench_train --lfw $(LFW)

bench-ablation:
	$(BIN)/python -m benchmarks.ablation --lfw $(LFW)

demo:
	$(BIN)/facerec demo $(if $(SOURCE),--source $(SOURCE),)

clean:
	rm -rf runs .pytest_cache
