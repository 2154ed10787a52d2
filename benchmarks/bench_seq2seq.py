"""Seq2Seq on 红楼梦: each paragraph → the next (the seeds' central experiment).

Trains ``--arch seq2seq`` on hongloumeng continuation pairs for ``--minutes``, then on held-out
pairs (the last 10% of the novel, never trained on) reports:

- validation loss / perplexity at each evaluation during training (it must fall);
- BLEU and chrF (sacrebleu, character-level for Chinese) of greedy, beam-4 and sampled answers,
  against the baseline "copy the input paragraph" (a strong baseline for chrF: neighbouring
  paragraphs share names and places);
- how often beam search (4 beams, raw log-probability) finds a sequence at least as likely as
  greedy's;
- three inputs with their continuations, and an attention heatmap of one.

    .venv/bin/python benchmarks/bench_seq2seq.py --minutes 10 --pairs 100
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _common import parser, timed

from xuxie import TextGenerator
from xuxie.corpus import continuation_pairs, read_corpus
from xuxie.decoding import GenerationConfig, beam_search, generate_texts, sample_steps, sequence_logprob
from xuxie.fileio import LOG
from xuxie.scoring import bleu_chrf


def decode_speed(tg: TextGenerator, ids: list[int], tokens: int = 200) -> None:
    """Greedy decoding with the carried decoder state + encoder memory vs re-encoding the source
    and re-running the decoder over everything written so far for every new token."""
    import torch

    model = tg.model
    cfg = GenerationConfig(max_new_tokens=tokens, temperature=0)

    def incremental() -> None:
        for _ in sample_steps(model, ids, cfg, 1):
            pass

    def naive() -> None:
        src = torch.tensor([ids])
        out = [tg.tokenizer.bos_id]
        with torch.inference_mode():
            for _ in range(tokens):
                logits = model.forward_pairs(src, None, torch.tensor([out]))
                out.append(int(logits[0, -1].argmax()))

    fast = timed(incremental, 3, warmup=1)
    slow = timed(naive, 1)
    print(f"\ndecoding {tokens} tokens (source {len(ids)} tokens): carried state {tokens / fast:,.0f} tok/s, "
          f"re-running everything {tokens / slow:,.0f} tok/s → {slow / fast:.1f}×")


def step_speed(pairs: int = 64, tokens: int = 128, vocab: int = 4400, repeats: int = 5) -> None:
    """Milliseconds per training step (forward + backward) of the default-sized model on random
    pairs: input feeding with the attention's keys/memory gradients summed over all steps in one
    batched product (the default), the same with autograd's per-step backward, and without input
    feeding (decoder RNN and attention over the whole target at once)."""
    import torch
    import torch.nn.functional as F

    from xuxie.models import build_model

    src, tgt = torch.randint(4, vocab, (pairs, tokens)), torch.randint(4, vocab, (pairs, tokens))

    def step_ms(input_feeding: bool, batched: bool = True) -> float:
        torch.manual_seed(0)
        model = build_model("seq2seq", vocab, input_feeding=input_feeding).train()
        model.batched_attention_backward = batched

        def step() -> None:
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model.forward_pairs(src, None, tgt).flatten(0, 1), tgt.flatten()).backward()

        return 1000 * timed(step, repeats, warmup=1)

    base = step_ms(True, batched=False)
    print(f"\ntraining step, {pairs} pairs × {tokens} tokens, vocabulary {vocab} (ms, median of {repeats}):")
    print(f"  input feeding, autograd's per-step attention backward  {base:8.0f}")
    for name, ms in (("input feeding, batched attention backward", step_ms(True)),
                     ("no input feeding (whole target at once)", step_ms(False))):
        print(f"  {name:<53} {ms:8.0f}  {base / ms:.2f}× faster")


def main() -> None:
    args = _arguments()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.step_speed:
        step_speed()
        return
    pairs = continuation_pairs(read_corpus("hongloumeng"))
    tg = _trained_model(args, pairs)
    _, val = pairs.split(0.1)
    n = min(args.pairs, len(val.documents))
    decoder = _Decoder(tg)
    systems = _compare_systems(decoder, val.documents[:n], val.targets[:n])
    _beam_against_greedy(decoder, val.documents[:n])
    _show_continuations(systems, val.documents[:n], val.targets[:n])
    decode_speed(tg, decoder.source_ids(val.documents[0]))
    if args.plot:
        src = next(s for s in val.documents[:n] if not tg.tokenizer.unknown_chars(s[:60]))[:60]
        ans = tg.continue_text(src, temperature=0, max_new_tokens=40)
        print(f"\nattention heatmap: {tg.plot_attention(src, ans, args.plot)}")


def _arguments():
    ap = parser(__doc__)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--pairs", type=int, default=100, help="held-out pairs to decode")
    ap.add_argument("--out", default=None)
    ap.add_argument("--max-target-len", type=int, default=None)
    ap.add_argument("--max-source-len", type=int, default=None)
    ap.add_argument("--hidden-size", type=int, default=None)
    ap.add_argument("--input-feeding", action=argparse.BooleanOptionalAction, default=None, help="default: the model's")
    ap.add_argument("--plot", default="seq2seq_attention.png")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 avoids thrashing on a shared machine)")
    ap.add_argument("--step-speed", action="store_true", help="only time training steps of each decoder variant")
    ap.add_argument("--model", default=None, help="evaluate this trained model directory instead of training one")
    return ap.parse_args()


def _trained_model(args, pairs) -> TextGenerator:
    """The model of ``--model``, or one trained for ``--minutes``; prints how its training went."""
    if args.model:
        out = Path(args.model)
        tg = TextGenerator.load(out)
    else:
        out = Path(args.out or tempfile.mkdtemp(prefix="bench-s2s-"))
        tg = TextGenerator.train(pairs, arch="seq2seq", out=out, time=args.minutes, overwrite=True, progress=False,
                                 model_options={"max_target_len": args.max_target_len, "max_source_len": args.max_source_len,
                                                "hidden_size": args.hidden_size, "input_feeding": args.input_feeding})
    r = tg.config["results"]
    feeding = "on" if tg.model.config.input_feeding else "off"
    print(f"trained {tg.model.num_parameters():,} parameters (input feeding {feeding}) for {r['seconds']:.0f} s: {r['steps']} steps, "
          f"batch {tg.config['train']['batch_size']}, {r['tokens_per_s']:,} target tokens/s; model {out}")
    evals = [json.loads(line) for line in (out / LOG).read_text().splitlines() if '"eval"' in line]
    print("validation perplexity by evaluation: " + ", ".join(f"step {e['step']}: {e['val_ppl']:.1f}" for e in evals))
    print(f"final validation loss {r['final_val_loss']:.4f} nats/char, perplexity {r['final_val_ppl']:.1f}")
    return tg


class _Decoder:
    """The model's decoding setup, for answering held-out sources with a given configuration."""

    def __init__(self, tg: TextGenerator) -> None:
        self.model, self.tok = tg.model, tg.tokenizer
        self.length = int(self.model.config.max_target_len)
        self.limit = int(self.model.config.max_source_len)
        self.suppress = list(tg.decoding.suppress)
        self.eos = tg.decoding.eos_id

    def source_ids(self, text: str) -> list[int]:  # held-out text may have characters never trained on: <unk>
        return self.tok.encode(text)[-self.limit:]

    def answers(self, sources: list[str], cfg: GenerationConfig) -> tuple[list[str], float]:
        t = time.perf_counter()
        texts = [generate_texts(self.model, self.tok, self.source_ids(s), cfg, 1, self.eos, self.suppress)[0] for s in sources]
        return texts, time.perf_counter() - t


def _compare_systems(d: _Decoder, sources: list[str], targets: list[str]) -> dict[str, tuple[list[str], float]]:
    """BLEU and chrF of greedy, beam-4 and sampled answers against copying the input."""
    systems = {
        "copy the input (baseline)": (list(sources), 0.0),
        "greedy": d.answers(sources, GenerationConfig(max_new_tokens=d.length, temperature=0)),
        "beam 4 (length penalty 1)": d.answers(sources, GenerationConfig(max_new_tokens=d.length, temperature=0, num_beams=4)),
        "sampling T=0.8 top-p 0.9": d.answers(sources, GenerationConfig(max_new_tokens=d.length, temperature=0.8, top_p=0.9, seed=0)),
    }
    n = len(sources)
    print(f"\nheld-out pairs: {n} (the last 10% of the novel)")
    print(f"{'system':<28} {'BLEU':>6} {'chrF':>6} {'mean chars':>10} {'seconds':>8}")
    for name, (hyps, secs) in systems.items():
        s = bleu_chrf(hyps, list(targets))
        print(f"{name:<28} {s['bleu']:6.2f} {s['chrf']:6.2f} {sum(map(len, hyps)) / n:10.1f} {secs:8.1f}")
    return systems


def _beam_against_greedy(d: _Decoder, sources: list[str], short: int = 64) -> None:
    """How often beam search finds an answer at least as likely as greedy's (raw log-probability,
    no length normalisation)."""
    wins = 0
    for s in sources:
        ids = d.source_ids(s)
        greedy_cfg = GenerationConfig(max_new_tokens=short, temperature=0)
        greedy = [t[0] for t in sample_steps(d.model, ids, greedy_cfg, 1, d.eos, d.suppress)]
        greedy_lp = sequence_logprob(d.model, ids, greedy, d.suppress)
        beam_cfg = GenerationConfig(max_new_tokens=short, temperature=0, num_beams=4, length_penalty=0.0)
        best = beam_search(d.model, ids, beam_cfg, d.eos, d.suppress)[0]
        beam_lp = sequence_logprob(d.model, ids, best.tokens + ([d.eos] if best.finished else []), d.suppress)
        wins += beam_lp >= greedy_lp - 1e-4
    n = len(sources)
    print(f"\nbeam 4 log-probability ≥ greedy's on {wins}/{n} held-out inputs ({100 * wins / n:.0f}%; answers of ≤ {short} tokens)")


def _show_continuations(systems: dict[str, tuple[list[str], float]], sources: list[str], targets: list[str]) -> None:
    print("\nthree continuations (input → greedy | beam 4 | sampled):")
    n = len(sources)
    for i in (0, n // 2, n - 1):
        print(f"\n[input]  {sources[i][:200]}")
        for name in ("greedy", "beam 4 (length penalty 1)", "sampling T=0.8 top-p 0.9"):
            print(f"[{name.split(' (')[0]}]  {systems[name][0][i][:200]}")
        print(f"[truth]  {targets[i][:200]}")


if __name__ == "__main__":
    main()
