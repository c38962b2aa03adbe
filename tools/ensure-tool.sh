#!/usr/bin/env bash
# Make sure a Debian-packaged tool is on PATH: install it with apt-get when we
# run as root, otherwise stop and say exactly what to install.
# Usage: tools/ensure-tool.sh COMMAND DEBIAN_PACKAGE
set -euo pipefail
cmd=$1
pkg=$2
if command -v "$cmd" >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "orbit-hil: '$cmd' not found; installing Debian package '$pkg' with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
    command -v "$cmd" >/dev/null 2>&1 && exit 0
    echo "orbit-hil: apt-get installed '$pkg' but '$cmd' is still not on PATH" >&2
    exit 1
fi
echo "orbit-hil: '$cmd' is required but not installed." >&2
echo "  Install it with:  sudo apt-get install $pkg" >&2
exit 1
