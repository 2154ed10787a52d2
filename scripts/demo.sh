#!/usr/bin/env bash
# Installs everything, trains the default LSTM on Tiny Shakespeare for 3 minutes, then writes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
MINUTES=${MINUTES:-3}
.venv/bin/xuxie train tinyshakespeare --out runs/shakespeare --time "$MINUTES" --overwrite
for t in 0.2 0.5 1.0; do
  echo "=== temperature $t ==="
  .venv/bin/xuxie generate runs/shakespeare --prompt "ROMEO:" --temperature "$t" --max-new-tokens 300 --seed 1
done
