#!/usr/bin/env bash
# Set up everything the tests need and run them all: lint, the fast suite with coverage, and
# (when the machine can) the suites of the other markers. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(fdisk)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ "${#missing[@]}" -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'

echo "== ruff"
.venv/bin/ruff check .
echo "== pytest (fake backend) with coverage"
start=$(date +%s)
.venv/bin/coverage erase
# `pytest`, not `python -m pytest`: the latter puts the checkout on sys.path (see tests/unit).
.venv/bin/coverage run .venv/bin/pytest tests "$@"
.venv/bin/coverage report --fail-under=90 --include='xen2kvm/*,backends/fake/*'
echo "== done in $(( $(date +%s) - start )) s"
