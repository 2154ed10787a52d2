"""attention-rnn (textgenrnn's architecture) vs the default LSTM, same wall-clock budget, lines mode.

    python benchmarks/bench_attention_rnn.py                  # hacker_news_2000, 1 minute each
    python benchmarks/bench_attention_rnn.py --minutes 2 --corpus ../shared/corpora/hacker_news_2000.txt

Prints each model's validation loss (nats/char), steps, training tokens/s and five samples, and
the attention-rnn's generation speed against re-reading its 40-token window for every token
(textgenrnn's own decoding method).
"""

from __future__ import annotations

import tempfile

import torch
from _common import CORPORA, parser, timed

from xuxie import TextGenerator
from xuxie.decoding import GenerationConfig, generate_texts

HN = CORPORA / "hacker_news_2000.txt"


@torch.inference_mode()
def window_rerun(model, prompt: list[int], n: int, window: int) -> None:
    ids = list(prompt)
    for _ in range(n):
        logits, _ = model(torch.tensor([ids[-window:]]), None)
        ids.append(int(torch.multinomial(logits[0, -1].softmax(-1), 1)))


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--corpus", default=str(HN))
    ap.add_argument("--minutes", type=float, default=1.0)
    args = ap.parse_args()
    for arch in ("attention-rnn", "lstm"):
        with tempfile.TemporaryDirectory() as d:
            tg = TextGenerator.train(args.corpus, arch=arch, mode="lines", out=d, overwrite=True, time=args.minutes,
                                     progress=False, preview_length=0)
            r = tg.config["results"]
            print(f"{arch}: val loss {r['final_val_loss']:.4f} nats/char, {r['steps']} steps, "
                  f"{r['tokens_per_s']:,.0f} tokens/s, {tg.model.num_parameters():,} parameters", flush=True)
            for text in tg.generate(5, temperature=0.8, max_new_tokens=300, seed=0):
                print("   ", repr(text))
            if arch == "attention-rnn":
                decode_speed(tg)


def decode_speed(tg: TextGenerator) -> None:
    prompt = [tg.tokenizer.bos_id]
    cfg = GenerationConfig(max_new_tokens=500, temperature=1.0, seed=0)
    window = tg.model.config.window
    ours = timed(lambda: generate_texts(tg.model, tg.tokenizer, prompt, cfg, 1, None, ()), 3)
    rerun = timed(lambda: window_rerun(tg.model, prompt, 500, window), 3)
    print(f"   decoding 500 tokens: carried state + cached window {ours:.3f} s ({500 / ours:,.0f} tokens/s), "
          f"re-reading the {window}-token window each token {rerun:.3f} s ({rerun / ours:.1f}x slower)")


if __name__ == "__main__":
    main()
