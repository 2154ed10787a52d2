"""Two xuxie jobs on one machine: solo vs two-at-once tokens/s, torch defaults vs xuxie's.

For training (the default char LSTM on Tiny Shakespeare) and for batch-1 generation (the same
model), each setting runs one process alone, then two identical processes at once, and reports
each one's tokens/s and its share of the solo speed:

- ``torch defaults``: torch imported before xuxie, so OpenMP keeps its default spin-wait, and
  every workload uses all cores (torch's default thread count);
- ``xuxie defaults``: what ``xuxie train`` / ``xuxie generate`` do (short OpenMP spin, threads
  per workload: all cores to train, 1 to decode one sequence).

Every process runs the same fixed wall time; the rate is measured inside it, after a warm-up;
each figure is the median of ``--repeats`` runs. Nothing else may run meanwhile (two cores: any
other job spoils the figures).

    .venv/bin/python benchmarks/bench_contention.py            # ≈ 6 minutes
    .venv/bin/python benchmarks/bench_contention.py --seconds 30 --repeats 1
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import CORPORA, parser

CORPUS = CORPORA / "tinyshakespeare.txt"

CHILD = r"""
import json, os, sys, time
setting, workload, seconds, model_dir = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
if setting == "torch":
    import torch  # first: OpenMP reads its (default) settings now, before xuxie can set them
    import xuxie
    xuxie.set_threads(torch.get_num_threads())  # torch's default thread count for every workload
from xuxie import TextGenerator
if workload == "train":
    text = open(sys.argv[5], encoding="utf-8").read()[:400_000]
    tg = TextGenerator.train(text, time=seconds / 60, eval_interval=10**9, preview_length=0, progress=False,
                             val_fraction=0.02, seed=0)
    rate = tg.config["results"]["tokens_per_s"]  # the last 50 steps
else:
    tg = TextGenerator.load(model_dir)
    tg.generate(prompt="ROMEO:", max_new_tokens=100, seed=0)  # warm-up
    start, tokens = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        tg.generate(prompt="ROMEO:", max_new_tokens=200, seed=tokens)
        tokens += 200
    rate = tokens / (time.perf_counter() - start)
print(json.dumps({"tokens_per_s": rate}))
"""


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                extra = "AVX-512 bf16" if "avx512_bf16" in flags else ("AVX-512" if "avx512f" in flags else "AVX2")
                return f"{line.split(':', 1)[1].strip()} ({extra}), {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def child_env() -> dict[str, str]:
    """The caller's environment without any thread settings, so each setting starts clean."""
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "XUXIE_THREADS"):
        env.pop(key, None)
    return env


def run(setting: str, workload: str, seconds: float, model_dir: str, copies: int) -> list[float]:
    cmd = [sys.executable, "-c", CHILD, setting, workload, str(seconds), model_dir, str(CORPUS)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=child_env()) for _ in range(copies)]
    rates = []
    for p in procs:
        out, _ = p.communicate(timeout=seconds * 20 + 300)
        if p.returncode != 0:
            raise SystemExit(f"child failed ({setting}, {workload})")
        rates.append(json.loads(out.strip().splitlines()[-1])["tokens_per_s"])
    return rates


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--seconds", type=float, default=12, help="wall time of each process")
    ap.add_argument("--repeats", type=int, default=3, help="runs per figure (the median is reported)")
    args = ap.parse_args()
    if os.getloadavg()[0] > 0.5:
        print(f"warning: load average {os.getloadavg()[0]:.1f}: another job is running; the figures will mean little")
    print(f"CPU: {cpu_name()}; {args.seconds:.0f} s per process, median of {args.repeats}\n")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(Path(tmp) / "lstm")
        from xuxie import TextGenerator  # a default-size LSTM for the generation runs (speed does not depend on its weights)

        TextGenerator.train(CORPUS.read_text(encoding="utf-8")[:100_000], out=model_dir, steps=1, preview_length=0, progress=False)
        rows = []
        for workload in ("train", "generate"):
            for setting, label in (("torch", "torch defaults"), ("xuxie", "xuxie defaults")):
                solo = statistics.median(run(setting, workload, args.seconds, model_dir, 1)[0] for _ in range(args.repeats))
                pairs = [sorted(run(setting, workload, args.seconds, model_dir, 2)) for _ in range(args.repeats)]
                pair = [statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)]
                rows.append((workload, label, solo, pair))
                print(f"{workload:8s} {label:15s} solo {solo:8,.0f} tok/s   two at once {pair[0]:8,.0f} + {pair[1]:8,.0f} tok/s "
                      f"= {min(pair) / solo:5.0%} / {max(pair) / solo:5.0%} of solo each", flush=True)
    print("\n| workload | setting | solo tok/s | two at once, each | share of solo (worse one) |")
    print("|---|---|---|---|---|")
    for workload, label, solo, pair in rows:
        print(f"| {workload} | {label} | {solo:,.0f} | {pair[0]:,.0f} / {pair[1]:,.0f} | {min(pair) / solo:.0%} |")
    base = {w: s for w, label, s, _ in rows if label == "torch defaults"}
    for workload, label, solo, _ in rows:
        if label == "xuxie defaults":
            print(f"{workload}: xuxie's solo speed is {solo / base[workload]:.0%} of torch defaults' solo speed")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s)")
