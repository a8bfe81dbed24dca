# Set-up is part of every target: `.venv` is created and the package installed when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench gpu-check lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,denoise,sweep,watch]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/smoothadv demo $(DEMO_ARGS)

# The real-SLURM tests mostly wait on the scheduler: by default they run in a second pytest
# process beside the rest of the suite (their output follows the main run's); with PYTEST_ARGS
# everything runs in one process as asked.
SLURM_TESTS := tests/test_sweep_slurm.py

test: $(STAMP)
ifeq ($(strip $(PYTEST_ARGS)),)
	@$(BIN)/python -m pytest -q -p no:cacheprovider $(SLURM_TESTS) > .slurm-tests.log 2>&1 & \
	slurm=$$!; \
	$(BIN)/python -m pytest -q --ignore=$(SLURM_TESTS); main=$$?; \
	wait $$slurm; other=$$?; \
	echo "--- real-SLURM tests ($(SLURM_TESTS)), run beside the suite:"; cat .slurm-tests.log; \
	test $$main -eq 0 && test $$other -eq 0
else
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)
endif

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# What a user with an NVIDIA GPU runs first (a few minutes): the device tests, CPU-GPU agreement
# and certification throughput per precision and compile mode.
gpu-check: $(STAMP)
	$(BIN)/python scripts/gpu_check.py

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
