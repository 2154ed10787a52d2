"""Generation speed: incremental decoding (carried RNN state) vs the classic re-run-the-window method.

The classic Keras char-LSTM example generates each character by running the model over the
last 60 characters again. xuxie carries the recurrent state, so each new character costs one
step. This script measures both in the same process, on the same model, and checks that cost is
linear in length (4000 new tokens vs 2000).

    python benchmarks/bench_generation.py                  # default LSTM size, random weights
    python benchmarks/bench_generation.py --model runs/shakespeare

Prints medians of several repetitions; speed does not depend on the weights.
"""

from __future__ import annotations

import torch
from _common import parser, printable_tokenizer, timed

from xuxie.api import ARCH_DEFAULTS
from xuxie.decoding import GenerationConfig, generate_texts, prompt_ids_for, suppressed_ids
from xuxie.models import build_model


@torch.inference_mode()
def naive_window_generate(model, prompt_ids: list[int], n_new: int, window: int, temperature: float, gen: torch.Generator) -> list[int]:
    """The Keras example's method: for every new token, run the model over the last ``window`` tokens."""
    ids = list(prompt_ids)
    for _ in range(n_new):
        x = torch.tensor([ids[-window:]], dtype=torch.long)
        logits, _ = model(x, None)
        probs = (logits[0, -1].float() / temperature).softmax(-1)
        ids.append(int(torch.multinomial(probs, 1, generator=gen)))
    return ids[len(prompt_ids):]


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--model", help="a trained model directory (default: the default LSTM size with random weights)")
    ap.add_argument("--chars", type=int, default=1000)
    ap.add_argument("--window", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    if args.model:
        from xuxie import TextGenerator

        tg = TextGenerator.load(args.model, "cpu")
        model, tok, mode = tg.model, tg.tokenizer, tg.mode
    else:
        tok = printable_tokenizer()
        torch.manual_seed(0)
        model = build_model("lstm", tok.vocab_size, **ARCH_DEFAULTS["lstm"]).eval()
        mode = "text"
    prompt = prompt_ids_for(tok, "", mode)
    sup = suppressed_ids(tok, mode)
    print(f"model: {model.config}  ({model.num_parameters():,} parameters), threads={torch.get_num_threads()}")

    def ours(n: int):
        cfg = GenerationConfig(max_new_tokens=n, temperature=1.0, seed=0)
        return generate_texts(model, tok, prompt, cfg, 1, None, sup)

    gen = torch.Generator().manual_seed(0)
    ours(50)  # warm-up
    t_ours = timed(lambda: ours(args.chars), args.repeats)
    t_naive = timed(lambda: naive_window_generate(model, prompt, args.chars, args.window, 1.0, gen), max(1, args.repeats - 1))
    print(f"\ngenerating {args.chars} characters (median of {args.repeats}):")
    print(f"  xuxie, carried state:        {t_ours:7.3f} s  {args.chars / t_ours:8.0f} chars/s")
    print(f"  naive, re-run last {args.window} chars: {t_naive:7.3f} s  {args.chars / t_naive:8.0f} chars/s")
    print(f"  speed-up: {t_naive / t_ours:.1f}x   (target ≥ 20x; the Keras example generated 18 chars/s here)")

    t2 = timed(lambda: ours(2000), args.repeats)
    t4 = timed(lambda: ours(4000), args.repeats)
    print("\nlinear cost:")
    print(f"  2000 new tokens: {t2:.3f} s   4000 new tokens: {t4:.3f} s   ratio {t4 / t2:.2f}  (target ≤ 2.2)")

    for n in (4, 16):
        config = GenerationConfig(max_new_tokens=args.chars, seed=0)
        tb = timed(lambda n=n, config=config: generate_texts(model, tok, prompt, config, n, None, sup), args.repeats)
        print(f"  batched: {n} samples × {args.chars} chars in {tb:.3f} s = {n * args.chars / tb:,.0f} chars/s")
    tb = timed(lambda: generate_texts(model, tok, prompt, GenerationConfig(max_new_tokens=200, num_beams=4), 1, None, sup), args.repeats)
    print(f"  beam search (4 beams) 200 tokens: {tb:.3f} s = {200 / tb:,.0f} tokens/s")


if __name__ == "__main__":
    main()
