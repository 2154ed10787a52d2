#!/usr/bin/env bash
# Installs everything, then runs the whole test suite (about 17 minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -ra "$@"
