#!/usr/bin/env bash
# Lint every RTL module with Verilator -Wall, then the top with its default
# parameters and in every build the cocotb tests simulate (cocotb_tests/builds.py,
# the one list of them). PY names the Python that reads that list (default: the
# repository's .venv).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PY:-$root/.venv/bin/python}"
builds="$(cd "$root" && PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "$py" -m cocotb_tests.builds)"
cd "$root/hdl/rtl"
for f in scc_*.v; do
    verilator --lint-only -Wall -y . --top-module "${f%.v}" "$f"
done
count=0
while IFS= read -r cfg; do
    # shellcheck disable=SC2086
    verilator --lint-only -Wall -y . --top-module scc_top scc_top.v $cfg
    count=$((count + 1))
done <<< "$builds"
echo "hdl/rtl: verilator -Wall clean (every module; scc_top by default and in $count test builds)"
