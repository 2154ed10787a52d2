"""Muon's optimiser step: ``torch.optim.Muon`` (one matrix at a time, always bf16) against xuxie's
(one batched Newton–Schulz iteration per shape, fp32 or bf16), on the hidden matrices of the
transformer presets and the default LSTM; milliseconds per step, median.

    python benchmarks/bench_muon.py

On 2 cores the iteration costs about as much as the tiny transformer's forward and backward pass,
so this decides how many training steps a minute holds. bf16 is what xuxie picks where the CPU has
AVX-512 bf16 or AMX; elsewhere it iterates in fp32 (torch's bf16 is then emulated).
"""

from __future__ import annotations

import torch
from _common import cpu_name, parser, timed

from xuxie.models import build_model
from xuxie.optim import Muon
from xuxie.training import hidden_matrices

MODELS = {"transformer 4×128 (tiny)": ("transformer", {"preset": "tiny"}),
          "transformer 6×192 (small)": ("transformer", {"preset": "small"}),
          "transformer 6×384 (base)": ("transformer", {"preset": "base"}),
          "LSTM 512": ("lstm", {})}
OPTIMIZERS = {"torch.optim.Muon": lambda ps: torch.optim.Muon(ps, lr=0.02, adjust_lr_fn="original"),
              "xuxie fp32": lambda ps: Muon(ps, ns_dtype=torch.float32),
              "xuxie bf16": lambda ps: Muon(ps, ns_dtype=torch.bfloat16)}


def step_ms(make, arch: str, options: dict) -> float:
    params = hidden_matrices(build_model(arch, 65, **options))
    for p in params:
        p.grad = torch.randn_like(p)
    optimizer = make(params)
    return timed(optimizer.step, repeats=20, warmup=3) * 1e3


def main() -> None:
    parser(__doc__).parse_args()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; ms per optimiser step (median of 20)")
    print("| matrices of | " + " | ".join(OPTIMIZERS) + " |\n|---|" + "---|" * len(OPTIMIZERS))
    for label, (arch, options) in MODELS.items():
        print(f"| {label} | " + " | ".join(f"{step_ms(make, arch, options):.1f}" for make in OPTIMIZERS.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
