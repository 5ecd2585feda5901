#!/usr/bin/env bash
# Install the Debian packages the tests and benchmarks need. Each area lists its packages in
# scripts/apt/<area>.txt (one per line, '#' comments). Idempotent; needs root (or sudo).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pkgs=$(cat "$here"/apt/*.txt 2>/dev/null | sed 's/#.*//' | tr -s ' \n' '\n' | grep -v '^$' | sort -u || true)
[ -z "$pkgs" ] && exit 0
missing=()
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && { echo "system deps: all present"; exit 0; }
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
