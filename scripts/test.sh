#!/usr/bin/env bash
# Installs everything, then runs the whole test suite (17-25 minutes on 2 CPU cores) and names the slowest tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -ra --durations=20 "$@"
