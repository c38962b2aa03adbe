# orbit-hil: every entry point a user needs. The first run of `make test` or
# `make demo` creates .venv and installs what is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= 2

.PHONY: test lint bench fuzz coverage mutate demo sitemap synth venv iverilog verilator chromium clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "orbit-hil needs Python 3.11 or newer: install python3.11 and python3.11-venv, or run make PYTHON=python3.11")'
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { echo "orbit-hil: python venv module missing: sudo apt-get install python3-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

iverilog:
	@tools/ensure-tool.sh iverilog iverilog

verilator:
	@tools/ensure-tool.sh verilator verilator

# Debian's Chromium, which the live page's browser test drives through Playwright (no
# browser is downloaded).
chromium:
	@tools/ensure-tool.sh chromium chromium

# Every test; then the functional coverage of the cocotb runs (results/fcov/) is merged into
# results/functional-coverage.md, and a declared bin never hit fails the target.
test: venv iverilog chromium
	$(PY) -m pytest -n $(JOBS) --junitxml=results/junit.xml
	$(PY) -m cocotb_tests.fcov report

lint: venv verilator
	PY=$(PY) hdl/lint.sh
	$(PY) -m ruff check protocol testbed firmware_sim host tests cocotb_tests bench campaign

bench: venv iverilog
	$(PY) -m bench

# Hostile input: a million frames over a pty to the flight software, with its counters,
# memory and state checked afterwards (bench/results/fuzz.json); then coverage-guided
# fuzzing of the frame decoder and the dispatcher in process for FUZZ_SECONDS, from the
# corpus in tests/fuzz/corpus (failing inputs go to results/fuzz/). Not part of `make test`.
FUZZ_SECONDS ?= 300

# Line and toggle coverage of the RTL per module, from the cocotb tests under Verilator
# (results/coverage.md, results/coverage.json with every point never reached).
# COVERAGE_TESTS picks the cocotb test files or tests (default: all of cocotb_tests).
COVERAGE_TESTS ?=
coverage: venv
	$(PY) -m testbed.coverage $(COVERAGE_TESTS)

# Mutation testing of the RTL: Yosys lists mutations of every module (mutate -list), each
# mutant is simulated under Icarus with the cocotb tests of the mutation build, and
# results/mutation.json holds the score, the survivors and their source lines
# (docs/VERIFICATION.md). Resumable: results/mutation/ keeps each mutant's outcome.
MUTATE_JOBS ?= 2
MUTATE_ARGS ?=
mutate: venv iverilog
	$(PY) -m testbed.mutate --jobs $(MUTATE_JOBS) $(MUTATE_ARGS)

fuzz: venv
	$(PY) -m bench.fuzz_link
	$(PY) -m bench.fuzz_inprocess --seconds $(FUZZ_SECONDS)

demo: venv
	$(PY) -m host.demo

# Regenerates testbed/sitemaps/ from hdl/rtl with Yosys (every kept build).
sitemap: venv
	$(PY) -m testbed.sitemap generate

# Synthesizes the protection builds with Yosys and writes their area (cells, flip-flops,
# memory bits) to testbed/area/ (committed); a build whose RTL is unchanged is not
# synthesized again.
synth: venv
	$(PY) -m testbed.synth

clean:
	rm -rf sim_build results reports .pytest_cache
