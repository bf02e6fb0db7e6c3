# `make demo` and `make test` each set up everything on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU TensorFlow and JAX by default, psycopg for sweeps on PostgreSQL; `make install
# EXTRAS=gpu,dev,export,serve,sweep-db` on a CUDA machine; add `torch` for PyTorch (a
# multi-gigabyte CUDA build from PyPI: see test-torch).
EXTRAS ?= cpu,jax,dev,export,serve,sweep-db
# PyTorch's CPU build (small; the default wheel bundles CUDA).
TORCH_CPU ?= torch==2.13.0+cpu
DEMO_DATA := data/demo

.PHONY: install demo test test-fast test-torch lint format benchmark gpu-wheels constraints schemas docs docs-serve clean

$(BIN)/animalcnn: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

install: $(BIN)/animalcnn

$(DEMO_DATA)/train: | $(BIN)/animalcnn
	$(BIN)/animalcnn data synth $(DEMO_DATA) --per-class 200 --test-per-class 40

demo: install $(DEMO_DATA)/train
	$(BIN)/animalcnn train configs/demo.yaml
	$(BIN)/animalcnn evaluate $$(ls -d runs/demo-* | tail -n 1)
	$(BIN)/animalcnn compare runs/demo-*

# One pytest worker per CPU and one more (pytest-xdist): many tests wait on a subprocess,
# a server or a sleep, and the extra worker keeps both cores busy meanwhile (on two cores:
# 7-8 minutes instead of 9-10, at 190 % of a core). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: install
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal

# PyTorch's CPU build, then the tests that train, resume, evaluate and predict on it.
test-torch: install
	$(BIN)/pip install --quiet "$(TORCH_CPU)"
	$(BIN)/pytest -q tests/test_backends.py

test-fast: install
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not slow"

benchmark: install
	$(BIN)/python benchmarks/pipeline.py

# What a GPU machine with JAX and PyTorch but no TensorFlow or network lacks to run
# `animalcnn train` (benchmarks/gpu_train.sh), as Python 3.12 wheels in .whl/.
GPU_WHEELS := keras namex optree pydantic pydantic_core annotated-types typing-inspection
gpu-wheels: install
	mkdir -p .whl
	for p in $(GPU_WHEELS); do \
	  $(BIN)/pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
	    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	    --platform manylinux2014_x86_64 -d .whl "$$(grep -i "^$$p==" constraints.txt)" || exit 1; \
	done

lint: install
	$(BIN)/ruff check animalcnn tests docs $(wildcard benchmarks)
	$(BIN)/ruff format --check animalcnn tests docs $(wildcard benchmarks)

format: install
	$(BIN)/ruff format animalcnn tests docs $(wildcard benchmarks)
	$(BIN)/ruff check --fix animalcnn tests docs $(wildcard benchmarks)

# The versions in constraints.txt, refreshed from what is installed (after a green test).
constraints: install
	{ sed -n '1,3p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^animalcnn\|^torch=='; } > constraints.new
	mv constraints.new constraints.txt

# The JSON Schemas of config and sweep files in animalcnn/schemas/, written again from the
# models (after an option changes; a test fails until they match).
schemas: install
	$(BIN)/animalcnn config --schema > animalcnn/schemas/config.schema.json
	$(BIN)/animalcnn sweep --schema > animalcnn/schemas/sweep.schema.json

# The documentation site (mkdocs.yml), strict: a broken link or a page left out fails.
docs: install
	$(BIN)/mkdocs build --strict

docs-serve: install
	$(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) $(DEMO_DATA) .pytest_cache site
