#!/usr/bin/env bash
# Lint every RTL module with Verilator -Wall, and the top in each protection
# configuration the tests build.
set -euo pipefail
cd "$(dirname "$0")/rtl"
for f in scc_*.v; do
    verilator --lint-only -Wall -y . --top-module "${f%.v}" "$f"
done
for cfg in "-GN=2" "-GN=8" "-GN=4 -GECC_EN=0 -GSCRUB_EN=0 -GTMR_EN=0" "-GN=8 -GINTERLEAVE=4"; do
    # shellcheck disable=SC2086
    verilator --lint-only -Wall -y . --top-module scc_top scc_top.v $cfg
done
echo "hdl/rtl: verilator -Wall clean"
