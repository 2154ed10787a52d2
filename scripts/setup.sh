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
# A font with CJK glyphs so plots label Chinese text (Debian's WenQuanYi Micro Hei, 1.6 MB).
# Installed only where we are root with apt and no CJK font is present; elsewhere install one
# yourself (any Noto Sans CJK / WenQuanYi / SimHei / PingFang font is found automatically).
if command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh 2>/dev/null)" ]; then
  :
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -qq fonts-wqy-microhei >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq fonts-wqy-microhei >/dev/null 2>&1; }) \
    || echo "note: could not install fonts-wqy-microhei; plots may show boxes for Chinese" >&2
fi
# Headless Chromium, for the test that opens `xuxie analyze`'s report.html and checks that its
# embedded plots load (Debian's `chromium`). Installed only where we are root with apt.
if command -v chromium >/dev/null 2>&1; then
  :
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }) \
    || echo "note: could not install chromium; the report.html browser test will be skipped" >&2
fi
