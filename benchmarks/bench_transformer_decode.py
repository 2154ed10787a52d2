"""Transformer decoding speed, batch 1, sampling at temperature 1: xuxie's KV cache against
(b) re-running the whole window for every token and (c) Hugging Face transformers' ``generate``
on the exported model (same weights, same process).

    python benchmarks/bench_transformer_decode.py                 # the figures (a few minutes)
    python benchmarks/bench_transformer_decode.py --quick         # tiny sizes: checks it runs

Shapes (defaults):

  (a) vs (b): the ``small`` preset (6 layers × 192 wide, 6 heads, context 256, rotary),
      500 new tokens after a 1-token prompt (the window slides for the last 244); the naive
      loop calls ``model(ids[:, -context:])`` for every token. Target ≥ 5×.
  (a) vs (c): 4 layers × 128 wide (4 heads) and 6 × 384 (6 heads), context 512, rotary
      (exported as GPTNeoXForCausalLM), an 8-token prompt and 400 new tokens (HF stays within
      its max_position_embeddings). HF: ``generate(do_sample=True, top_k=0, use_cache=True)``;
      both sides suppress the same special tokens. Targets ≥ 3× and ≥ 1.5× (issue 16).

Random weights (speed does not depend on them), ``torch.manual_seed(0)``, 2 threads, a warm-up
run of each method first, medians of ``--repeats`` timed runs; tokens/s = new tokens / wall time.
"""

from __future__ import annotations

import os
import tempfile
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from _common import PRINTABLE, parser, printable_tokenizer  # noqa: E402
from _common import timed as _timed  # noqa: E402

from xuxie import checkpoint as ckpt  # noqa: E402
from xuxie.decoding import GenerationConfig, generate_texts, suppressed_ids  # noqa: E402
from xuxie.export import export_hf  # noqa: E402
from xuxie.models import build_model  # noqa: E402
from xuxie.threads import set_threads  # noqa: E402


def timed(fn, repeats: int) -> float:
    return _timed(fn, repeats, warmup=1)


def make(n_layer: int, n_embd: int, n_head: int, context: int):
    tok = printable_tokenizer()
    torch.manual_seed(0)
    model = build_model("transformer", tok.vocab_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                        context=context, positions="rotary").eval()
    return model, tok


def xuxie_sample(model, tok, prompt: list[int], n_new: int, sup: list[int]) -> None:
    cfg = GenerationConfig(max_new_tokens=n_new, temperature=1.0, seed=0)
    generate_texts(model, tok, prompt, cfg, 1, None, sup)


@torch.inference_mode()
def naive_sample(model, prompt: list[int], n_new: int, sup: list[int], gen: torch.Generator) -> None:
    """No cache: every token runs the model over the last ``context`` tokens again."""
    W = model.config.context
    ids = torch.tensor([prompt], dtype=torch.long)
    for _ in range(n_new):
        logits, _ = model(ids[:, -W:])
        scores = logits[0, -1].float()
        scores[sup] = float("-inf")
        nxt = torch.multinomial(scores.softmax(-1), 1, generator=gen)
        ids = torch.cat([ids, nxt[None]], 1)


def export_for_hf(model, tok, folder: Path):
    from transformers import AutoModelForCausalLM

    src, out = folder / "xuxie", folder / "hf"
    src.mkdir()
    tok.save(src / ckpt.TOKENIZER)
    ckpt.save_weights(model, src / ckpt.WEIGHTS)
    ckpt.write_config(src, {"arch": "transformer", "model": model.config.__dict__, "tokenizer": tok.kind, "mode": "text"})
    export_hf(src, out)
    return AutoModelForCausalLM.from_pretrained(out).eval()


@torch.inference_mode()
def hf_sample(hf, prompt: list[int], n_new: int) -> None:
    ids = torch.tensor([prompt], dtype=torch.long)
    out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=0, top_p=1.0, temperature=1.0,
                      max_new_tokens=n_new, min_new_tokens=n_new, use_cache=True)
    assert out.shape[1] == len(prompt) + n_new, out.shape


def shape_name(model) -> str:
    c = model.config
    return f"{c.n_layer}×{c.n_embd} ({c.n_head} heads, context {c.context}, {model.num_parameters():,} parameters)"


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=500, help="(a) vs (b): tokens to sample")
    ap.add_argument("--cache-shape", default="6x192x6", help="(a) vs (b): LAYERSxWIDTHxHEADS")
    ap.add_argument("--context", type=int, default=256, help="(a) vs (b): context")
    ap.add_argument("--hf-shapes", default="4x128x4,6x384x6", help="(a) vs (c): LAYERSxWIDTHxHEADS,…")
    ap.add_argument("--hf-context", type=int, default=512)
    ap.add_argument("--hf-new-tokens", type=int, default=400)
    ap.add_argument("--hf-prompt", type=int, default=8, help="prompt tokens for (a) vs (c)")
    ap.add_argument("--threads", type=int, default=2, help="threads for both sides (xuxie alone picks 1 for batch 1)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: check that it runs")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.new_tokens, args.cache_shape, args.context = 1, 40, "2x32x2", 16
        args.hf_shapes, args.hf_context, args.hf_new_tokens = "2x32x2,2x48x3", 64, 30
    torch.set_num_threads(args.threads)  # HF's generate and the naive loop
    set_threads(args.threads)  # xuxie's decoding (it would pick 1 thread for batch 1)
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads {torch.get_num_threads()}, "
          f"median of {args.repeats} after a warm-up, batch 1, temperature 1")
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.1f}: another process is using the CPU; with 2 threads a batch-1 step "
              "waits for a descheduled thread and the figures mean little")

    # ---------------------------------------------------------------- (a) vs (b)
    L, C, H = (int(x) for x in args.cache_shape.split("x"))
    model, tok = make(L, C, H, args.context)
    sup = suppressed_ids(tok, "text")
    prompt = tok.encode("\n")
    n = args.new_tokens
    gen = torch.Generator().manual_seed(0)
    t_cache = timed(lambda: xuxie_sample(model, tok, prompt, n, sup), args.repeats)
    t_naive = timed(lambda: naive_sample(model, prompt, n, sup, gen), args.repeats)
    print(f"\n(a) vs (b): {shape_name(model)}, {n} new tokens after a {len(prompt)}-token prompt")
    print(f"  (a) xuxie, KV cache:             {n / t_cache:8.1f} tokens/s  ({t_cache:.3f} s)")
    print(f"  (b) no cache, model(ids[:, -{args.context}:]): {n / t_naive:8.1f} tokens/s  ({t_naive:.3f} s)")
    print(f"  ratio a/b: {t_naive / t_cache:.2f}x   (target ≥ 5x)")

    # ---------------------------------------------------------------- (a) vs (c)
    targets = [3.0, 1.5]
    for i, shape in enumerate(args.hf_shapes.split(",")):
        L, C, H = (int(x) for x in shape.split("x"))
        model, tok = make(L, C, H, args.hf_context)
        sup = suppressed_ids(tok, "text")
        prompt = tok.encode((PRINTABLE * 100)[: args.hf_prompt])
        n = args.hf_new_tokens
        if len(prompt) + n > args.hf_context:
            raise SystemExit(f"--hf-prompt + --hf-new-tokens must fit the context {args.hf_context}")
        with tempfile.TemporaryDirectory() as folder:
            hf = export_for_hf(model, tok, Path(folder))
        torch.manual_seed(0)
        t_ours = timed(partial(xuxie_sample, model, tok, prompt, n, sup), args.repeats)
        t_hf = timed(partial(hf_sample, hf, prompt, n), args.repeats)
        target = targets[i] if i < len(targets) else 1.0
        print(f"\n(a) vs (c): {shape_name(model)}, {n} new tokens after a {len(prompt)}-token prompt; HF {type(hf).__name__}")
        print(f"  (a) xuxie, KV cache:        {n / t_ours:8.1f} tokens/s  ({t_ours:.3f} s)")
        print(f"  (c) transformers generate:  {n / t_hf:8.1f} tokens/s  ({t_hf:.3f} s)")
        print(f"  ratio a/c: {t_hf / t_ours:.2f}x   (target ≥ {target}x)")


if __name__ == "__main__":
    main()
