"""Quality per minute: the default LSTM on tinyshakespeare under 3- and 5-minute budgets.

Reference, the seeds' own method (the classic Keras char-LSTM: 60-char one-hot windows, step 3,
LSTM 128, RMSprop), measured on this kind of machine: validation loss 1.868 after 150 s of
training and 1.789 after 295 s, generating 18 chars/s. Validation = the last 10% of the text.

    python benchmarks/bench_quality.py                 # 3 and 5 minutes, default settings
    python benchmarks/bench_quality.py --minutes 2 --hidden-size 384 --batch-size 64

Each budget is a separate run (the cosine schedule is fitted to its budget). Prints the final
validation loss (nats/char, whole validation set, fp32), bits per char, steps and training
tokens/s, and the ratio to the Keras reference.
"""

from __future__ import annotations

import tempfile

from _common import parser, print_sample

from xuxie import TextGenerator

KERAS = {2.5: 1.868, 4.9: 1.789}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--corpus", default="tinyshakespeare")
    ap.add_argument("--minutes", type=float, nargs="+", default=[3.0, 5.0])
    ap.add_argument("--arch", default="lstm")
    ap.add_argument("--hidden-size", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--precision")
    ap.add_argument("--dropout", type=float)
    args = ap.parse_args()

    rows = []
    for minutes in args.minutes:
        with tempfile.TemporaryDirectory() as d:
            tg = TextGenerator.train(
                args.corpus, arch=args.arch, out=d, overwrite=True, time=minutes, progress=False, preview_length=0,
                batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr, precision=args.precision,
                model_options={"hidden_size": args.hidden_size, "num_layers": args.layers, "dropout": args.dropout},
            )
            r = tg.config["results"]
            rows.append((minutes, r))
            print(f"{minutes:4.1f} min: val loss {r['final_val_loss']:.4f} nats/char, {r['final_val_bpc']:.3f} bits/char, "
                  f"{r['steps']} steps, {r['tokens_per_s']:,.0f} training tokens/s ({r['precision']}), "
                  f"{tg.model.num_parameters():,} parameters", flush=True)
            print_sample(tg)
    print("\nreference (Keras char-LSTM, same machine kind): 1.868 after 2.5 min, 1.789 after 4.9 min")
    for minutes, r in rows:
        ref = 1.868 if minutes < 4 else 1.789
        print(f"  {minutes:.1f} min: xuxie {r['final_val_loss']:.4f} vs Keras {ref}  ({ref - r['final_val_loss']:+.3f} nats better)")


if __name__ == "__main__":
    main()
