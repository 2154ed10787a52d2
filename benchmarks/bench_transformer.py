"""Transformer quality per wall-clock second on tinyshakespeare (char), and model-FLOPs utilisation.

Reference, measured on this kind of machine: nanoGPT's own CPU recipe for Tiny Shakespeare
(4 layers, 4 heads, 128 wide, context 64, batch 12, 2000 iterations) reaches validation loss 1.886
in 90–110 s at 15–19k tokens/s. Targets: ≤ 1.80 within 110 s and ≤ 1.70 within 5 minutes.

    python benchmarks/bench_transformer.py                         # default preset, 110 s and 5 min
    python benchmarks/bench_transformer.py --seconds 110 --preset tiny --precision fp32 --lr 3e-3

The budget includes everything the trainer does (evaluations, sample previews off). The peak
matmul rate is measured in the same run (a large square matmul in fp32 and in bf16), and MFU is
6 · parameters · training tokens/s over the peak of the precision trained in.
"""

from __future__ import annotations

import tempfile

import torch
from _common import matmul_peak, parser, print_sample

from xuxie import TextGenerator


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--seconds", type=float, nargs="+", default=[110.0, 300.0])
    ap.add_argument("--preset")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--width", type=int)
    ap.add_argument("--context", type=int)
    ap.add_argument("--positions")
    ap.add_argument("--dropout", type=float)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--precision")
    args = ap.parse_args()

    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"measured matmul peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s, threads={torch.get_num_threads()}")
    rows = []
    for seconds in args.seconds:
        with tempfile.TemporaryDirectory() as d:
            tg = TextGenerator.train(
                "tinyshakespeare", arch="transformer", out=d, overwrite=True, time=seconds / 60, progress=False,
                preview_length=0, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
                warmup_steps=args.warmup, precision=args.precision,
                model_options={"preset": args.preset, "n_layer": args.layers, "n_head": args.heads, "n_embd": args.width,
                               "context": args.context, "positions": args.positions, "dropout": args.dropout},
            )
            r, m = tg.config["results"], tg.model
            params = m.num_parameters()
            tps = r["tokens_per_s"]
            mfu = 6 * params * tps / 1e9 / peaks[r["precision"]]
            c = m.config
            rows.append((seconds, r["final_val_loss"]))
            print(f"{seconds:5.0f} s: val loss {r['final_val_loss']:.4f} nats/char ({r['final_val_bpc']:.3f} bits/char), "
                  f"{r['steps']} steps, {tps:,.0f} training tokens/s ({r['precision']}), MFU {mfu:.0%} of the {r['precision']} peak | "
                  f"{c.n_layer}x{c.n_embd} h{c.n_head} ctx{c.context} {c.positions}, {params:,} parameters, "
                  f"batch {tg.config['train']['batch_size']}x{tg.config['train']['seq_len']}, lr {tg.config['train']['lr']}", flush=True)
            print_sample(tg)
    print("\nreference: nanoGPT CPU recipe 1.886 in 90-110 s; targets ≤ 1.80 within 110 s, ≤ 1.70 within 300 s")
    for seconds, loss in rows:
        target = 1.80 if seconds <= 110 else 1.70
        print(f"  {seconds:.0f} s: {loss:.4f}  ({'meets' if loss <= target else 'misses'} ≤ {target})")


if __name__ == "__main__":
    main()
