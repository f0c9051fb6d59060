#!/usr/bin/env bash
# Set up a virtualenv in .venv (no root needed) and run the demo on the embedded fake cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/xen2kvm demo "$@"
