"""One process with all threads vs several processes (torchrun + DistributedDataParallel), and
bf16 vs fp32, for the default LSTM and the default transformer on Tiny Shakespeare.

Every run is ``xuxie train tinyshakespeare --time MINUTES`` through the CLI with the defaults (the
same global batch whatever the processes: each takes its share), and the table gives the
training speed and the validation loss on the full validation split after the same minutes.

    python benchmarks/bench_distributed.py                  # 1 minute a run, 8 runs
    python benchmarks/bench_distributed.py --minutes 3 --archs lstm

Run it on a quiet machine: the runs take every core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import CORPORA, parser


def cpu_name() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "unknown CPU")
    return f"{name} ({'avx512_bf16' if 'avx512_bf16' in info else 'no bf16'}), {os.cpu_count()} cores"


def train(arch: str, out: Path, minutes: float, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "xuxie", "train", str(CORPORA / "tinyshakespeare.txt"), "--arch", arch, "--out", str(out),
           "--time", str(minutes), "--preview-length", "0", "-q", *extra]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return json.loads((out / "config.json").read_text())["results"]


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--archs", nargs="+", default=["lstm", "transformer"])
    p.add_argument("--minutes", type=float, default=1.0)
    p.add_argument("--nproc", type=int, default=2)
    args = p.parse_args()
    print(f"CPU: {cpu_name()}; {args.minutes:g} minute(s) a run, Tiny Shakespeare, default settings")
    runs = [(f"1 process × {os.cpu_count()} threads", []),
            (f"{args.nproc} processes × {max(1, (os.cpu_count() or 1) // args.nproc)} thread(s)", ["--nproc", str(args.nproc)]),
            ("1 process, fp32", ["--precision", "fp32"]), ("1 process, bf16", ["--precision", "bf16"])]
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs:
            print(f"\n{arch}")
            print(f"  {'run':<28} {'steps':>6} {'tokens/s':>9} {'val loss':>9} {'precision':>9}")
            for i, (label, extra) in enumerate(runs):
                r = train(arch, Path(tmp) / f"{arch}-{i}", args.minutes, extra)
                print(f"  {label:<28} {r['steps']:>6} {r['tokens_per_s']:>9,.0f} {r['final_val_loss']:>9.4f} {r['precision']:>9}",
                      flush=True)


if __name__ == "__main__":
    main()
