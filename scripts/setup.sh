#!/usr/bin/env bash
# Creates .venv and installs xuxie with its test tools. Safe to run again (quick when up to date).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
# torch is pinned to 2.13.0 (a CPU wheel of it lies on this machine's disk; see README).
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
