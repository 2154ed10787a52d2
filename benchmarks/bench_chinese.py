"""Chinese: how far each default learns 红楼梦 in a time budget (5 minutes unless told), against
the settings before issue 16 (the baseline) measured in the same run.

    python benchmarks/bench_chinese.py                                   # every model, 5 min, 1 run
    python benchmarks/bench_chinese.py --models lstm-word --seconds 90 --runs 2

Models: the default LSTM and transformer on characters (4.4k of them), and the LSTM on jieba words
(``--tokenizer word``, 20k tokens). The figure is bits per character on the validation split (the
last 10%), so character and word models compare; tokens/s is training tokens per second. Samples
at T = 0.8 continue ``--prompt``.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile

from _common import CORPORA, cpu_name, earlier_windows, parser, print_sample
from bench_speedrun import EARLIER

from xuxie import TextGenerator

#: name -> (architecture, tokenizer, the baseline's model options and training settings)
MODELS = {
    "lstm-char": ("lstm", "char", ({"softmax_cutoffs": []}, {})),
    "transformer-char": ("transformer", "char", EARLIER["baseline"]["transformer"]),
    "lstm-word": ("lstm", "word", ({"softmax_cutoffs": []}, {})),
}


def train(name: str, seconds: float, setting: str, prompt: str) -> dict:
    arch, tokenizer, baseline = MODELS[name]
    model, settings = baseline if setting == "baseline" else ({}, {})
    windows = earlier_windows() if setting == "baseline" else contextlib.nullcontext()  # as the baseline drew them
    with tempfile.TemporaryDirectory() as d, windows:
        tg = TextGenerator.train(CORPORA / "hongloumeng.txt", arch=arch, tokenizer=tokenizer, out=d, overwrite=True,
                                 time=seconds / 60, progress=False, preview_length=0, model_options=model, **settings)
        r = dict(tg.config["results"], vocab=tg.model.config.vocab_size)
        print_sample(tg, temperature=0.8, prompt=prompt)
    return r


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--settings", nargs="+", default=["baseline", "default"], choices=["baseline", "default"])
    ap.add_argument("--runs", type=int, default=1, help="runs of each (figures are medians)")
    ap.add_argument("--prompt", default="却说宝玉")
    args = ap.parse_args()

    print(f"{cpu_name()}, 红楼梦, {args.seconds:.0f} s per run", flush=True)
    table = []
    for name in args.models:
        for setting in args.settings:
            runs = []
            for i in range(args.runs):
                r = train(name, args.seconds, setting, args.prompt)
                runs.append((r["final_val_bpc"], r["final_val_loss"], r["tokens_per_s"], r["steps"]))
                print(f"{name} {setting}, run {i + 1}: {r['final_val_bpc']:.4f} bits/char (loss {r['final_val_loss']:.4f} "
                      f"per token), {r['steps']} steps, {r['tokens_per_s']:,.0f} tokens/s ({r['precision']}), "
                      f"vocabulary {r['vocab']:,}", flush=True)
            table.append((name, setting, *(statistics.median(col) for col in zip(*runs))))
    print(f"\nmedians of {args.runs} run(s), {args.seconds:.0f} s each")
    print("| model | setting | bits/char | loss/token | tokens/s | steps |\n|---|---|---|---|---|---|")
    for name, setting, bpc, loss, tps, steps in table:
        print(f"| {name} | {setting} | {bpc:.4f} | {loss:.4f} | {tps:,.0f} | {steps:.0f} |")


if __name__ == "__main__":
    main()
