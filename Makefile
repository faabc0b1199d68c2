# The two quickstart commands; each sets itself up on a fresh machine with Python >= 3.10:
#   make demo   the main job: the JSB Chorales comparison of Chung et al. (2014), Table 2
#               (make demo QUICK=1: the one-minute version of the same pipeline)
#   make test   the test suite without the slow tests (what .ci/run runs); narrow it with
#               make test PYTEST_ARGS="tests/test_packaging.py -x"
# Both create .venv, install torch (see TORCH below) and rnnbench into it, then run.

PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= dev,postgres,dashboard,onnx,midi,tensorboard
WORKERS ?= 2
PYTEST_ARGS ?=
QUICK ?=

PY := $(VENV)/bin/python
STAMP := $(VENV)/.rnnbench-installed

.PHONY: demo test install clean-venv

demo: $(STAMP)
	$(VENV)/bin/rnnbench study run chung2014_jsb --workers $(WORKERS) $(if $(QUICK),--quick)

# pytest's exit code 5 (no test collected) fails too: a narrowed run that ran nothing is
# no pass.
test: $(STAMP)
	@$(PY) -m pytest -m "not slow" -q -p no:cacheprovider $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest ran no test: failing" >&2; exit 1; fi; \
	exit $$status

install: $(STAMP)

# TORCH: a torch that imports is kept; else a CPU build on this machine's disk (pip's
# find-links), else on a machine with an NVIDIA GPU PyPI's CUDA build, else PyTorch's CPU
# build (a plain `pip install torch` would fetch a 3 GB CUDA build).
$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@if $(PY) -c "import torch" 2>/dev/null; then \
	  echo "torch: keeping $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	elif $(PY) -m pip install -q --no-index --no-deps "torch>=2.3" 2>/dev/null; then \
	  echo "torch: the build on this machine's disk (its dependencies come with rnnbench's)"; \
	elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  echo "torch: a GPU is present, installing the CUDA build"; \
	  $(PY) -m pip install -q "torch>=2.3"; \
	else \
	  echo "torch: no GPU, installing the CPU build"; \
	  $(PY) -m pip install -q "torch>=2.3" --index-url https://download.pytorch.org/whl/cpu; \
	fi
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
