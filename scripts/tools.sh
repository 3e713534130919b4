#!/usr/bin/env bash
# Install the external tools axc's hardware views are checked with: Icarus
# Verilog, Verilator, Yosys (and g++). Uses apt-get when running as root;
# otherwise says what to install.
set -euo pipefail
missing=()
for tool in iverilog verilator yosys g++; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
packages=()
for tool in "${missing[@]}"; do
    case "$tool" in
        g++) packages+=(g++) ;;
        *) packages+=("$tool") ;;
    esac
done
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${packages[@]}" >/dev/null
else
    echo "axc's tests need: ${packages[*]} (apt-get install ${packages[*]})" >&2
    exit 1
fi
