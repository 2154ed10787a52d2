"""The speedrun: how far each default learns Tiny Shakespeare (char level) in 110 s and 5 minutes,
against earlier defaults measured in the same run: ``baseline`` (before the speedrun), ``muon``
(the speedrun's first default, before weight decay 0.1 and the decay to 0), ``fp32`` (the
default before bf16 autocast with attention in fp32, where the CPU has bf16) and ``previous`` (the
defaults before windows in epoch order and, for the transformer, weight decay 0.2).

    python benchmarks/bench_speedrun.py                                  # both families, 110 s and 5 min, 1 run
    python benchmarks/bench_speedrun.py --arch lstm --seconds 110 --runs 2
    python benchmarks/bench_speedrun.py --arch transformer --settings muon default --runs 2
    python benchmarks/bench_speedrun.py --arch transformer --settings fp32 default --runs 2
    python benchmarks/bench_speedrun.py --settings previous default --seconds 300 --runs 2

The earlier settings draw each training window independently at a random position, as they did
when they were the default (``_common.earlier_windows``); today's default trains on every window
once an epoch (README, *Speedrun*).

Each budget is its own run (the schedule is fitted to its budget), with sample previews off; the
figure is the final validation loss over the whole validation split (the last 10%, fp32). MFU is
6 · parameters · training tokens/s over the matmul peak of the precision trained in, measured here.
Targets (issue 16): ≤ 1.45 at 5 minutes for both families, ≤ 1.60 at 110 s for the transformer;
the GPU record with nanoGPT's recipe (6×384 on an A100) is ≈ 1.47.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile

import torch
from _common import cpu_name, earlier_windows, matmul_peak, parser, print_sample

from xuxie import TextGenerator

#: earlier defaults, spelled out (all fp32 at the transformer's width 128): setting -> architecture ->
#: (model options, training settings);
#: None: that default is today's for the architecture (Muon, tried on the LSTM, learnt no more per
#: minute: README)
EARLIER = {
    "baseline": {  # before the speedrun
        "transformer": ({"mlp": "gelu", "qk_norm": False, "logit_cap": 0.0, "zero_init": False, "tie_weights": True},
                        {"optimizer": "adamw", "schedule": "cosine", "lr": 3e-3, "batch_size": 8, "weight_decay": 0.01,
                         "min_lr_ratio": 0.1, "precision": "fp32"}),
        "lstm": None,
    },
    "muon": {  # the speedrun's first default: Muon, batch 16, weight decay 0.01, cosine to 10%
        "transformer": ({}, {"weight_decay": 0.01, "min_lr_ratio": 0.1, "precision": "fp32"}),
        "lstm": None,
    },
    "fp32": {  # the default before bf16 autocast with attention in fp32: fp32 below width 256
        "transformer": ({}, {"precision": "fp32", "weight_decay": 0.1}),
        "lstm": None,
    },
    "previous": {  # the defaults before the epoch order and, for the transformer, weight decay 0.2
        "transformer": ({}, {"weight_decay": 0.1}),
        "lstm": ({}, {}),
    },
}
#: issue 16's targets: (architecture, seconds) -> validation loss
TARGETS = {("transformer", 110): 1.60, ("transformer", 300): 1.45, ("lstm", 300): 1.45}


def train(arch: str, seconds: float, setting: str) -> dict:
    model, settings = EARLIER[setting][arch] if setting in EARLIER else ({}, {})
    windows = earlier_windows() if setting in EARLIER else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as d, windows:
        tg = TextGenerator.train("tinyshakespeare", arch=arch, out=d, overwrite=True, time=seconds / 60, progress=False,
                                 preview_length=0, model_options=model, **settings)
        r = dict(tg.config["results"], parameters=tg.model.num_parameters())
        print_sample(tg, temperature=0.8)
    return r


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--arch", nargs="+", default=["transformer", "lstm"], choices=["transformer", "lstm"])
    ap.add_argument("--seconds", type=float, nargs="+", default=[110.0, 300.0])
    ap.add_argument("--settings", nargs="+", default=["baseline", "default"], choices=[*EARLIER, "default"])
    ap.add_argument("--runs", type=int, default=1, help="runs of each (figures are medians)")
    args = ap.parse_args()

    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"{cpu_name()}; matmul peak fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s, "
          f"{torch.get_num_threads()} threads", flush=True)
    runs: dict[tuple, list] = {}
    for arch in args.arch:
        settings = [s for s in args.settings if s not in EARLIER or EARLIER[s][arch] is not None]
        for setting in sorted(set(args.settings) - set(settings)):
            print(f"{arch}: the {setting} setting is today's default", flush=True)
        for seconds in args.seconds:
            for i in range(args.runs):  # settings take turns, so a machine's drift in speed hits each alike
                for setting in settings:
                    r = train(arch, seconds, setting)
                    mfu = 6 * r["parameters"] * r["tokens_per_s"] / 1e9 / peaks[r["precision"]]
                    runs.setdefault((arch, seconds, setting), []).append((r["final_val_loss"], r["tokens_per_s"], mfu, r["steps"]))
                    print(f"{arch} {setting} {seconds:.0f} s, run {i + 1}: val loss {r['final_val_loss']:.4f}, {r['steps']} steps, "
                          f"{r['tokens_per_s']:,.0f} tokens/s ({r['precision']}), MFU {mfu:.1%}, {r['parameters']:,} parameters",
                          flush=True)
    print(f"\nmedians of {args.runs} run(s)")
    print("| model | budget | setting | val loss | target | tokens/s | MFU | steps |\n|---|---|---|---|---|---|---|---|")
    for (arch, seconds, setting), figures in runs.items():
        loss, tps, mfu, steps = (statistics.median(col) for col in zip(*figures))
        target = TARGETS.get((arch, round(seconds)))
        verdict = "—" if target is None else f"≤ {target}: {'met' if loss <= target else 'not met'}"
        print(f"| {arch} | {seconds:.0f} s | {setting} | {loss:.4f} | {verdict} | {tps:,.0f} | {mfu:.1%} | {steps:.0f} |")


if __name__ == "__main__":
    main()
