"""Seq2Seq really learns (slow: minutes of training).

- Attention works: copying and reversing random strings of 5–30 symbols (one model with Bahdanau
  attention, which measured best here: 99.7% after 90 s vs 99.1% for Luong general; the task
  marked by the first symbol) reaches ≥ 99% exact match with greedy decoding on unseen strings
  after 2,000 steps. Without attention a fixed-size encoder state cannot hold
  30 symbols this exactly in that budget. With input feeding (each step knows what the last one
  attended to) 99.7% (README), without it (the default) 991/1000 here at 2,000 steps.
- On 红楼梦 continuation pairs (each paragraph → the next) validation perplexity falls during
  training, and beam search (4 beams) finds an answer at least as likely as greedy's for ≥ 90% of
  held-out inputs.
"""

from __future__ import annotations

import json
import random

import pytest

from xuxie import TextGenerator
from xuxie.corpus import continuation_pairs, read_corpus
from xuxie.decoding import GenerationConfig, beam_search, sample_steps, sequence_logprob

pytestmark = pytest.mark.slow

SYMBOLS = "abcdefghijklmnopqrst"


def copy_reverse(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = "".join(rng.choice(SYMBOLS) for _ in range(rng.randint(5, 30)))
        out.append((">" + s, s) if rng.random() < 0.5 else ("<" + s, s[::-1]))
    return out


def test_attention_copies_and_reverses_strings(tmp_path):
    train = tmp_path / "copy_reverse.tsv"
    train.write_text("\n".join(f"{a}\t{b}" for a, b in copy_reverse(20000, 0)) + "\n", encoding="utf-8")
    tg = TextGenerator.train(train, arch="seq2seq", out=tmp_path / "model", steps=2000, batch_size=64, lr=3e-3, precision="fp32",
                             val_fraction=0.02, progress=False, preview_length=0,
                             model_options={"hidden_size": 128, "embed_dim": 64, "dropout": 0.0, "attention": "additive",
                                            "input_feeding": True, "max_source_len": 40, "max_target_len": 40})
    test = copy_reverse(1000, 1)
    exact = sum(tg.continue_text(a, temperature=0) == b for a, b in test)
    print(f"copy/reverse exact match: {exact}/1000 after {tg.config['results']['steps']} steps")
    assert exact >= 990, exact


def test_hongloumeng_continuation_learns_and_beam_beats_greedy(tmp_path):
    pairs = continuation_pairs(read_corpus("hongloumeng"))
    # 300 steps measured: validation perplexity 655 (step 37) → 465 (step 300).
    tg = TextGenerator.train(pairs, arch="seq2seq", out=tmp_path / "hlm", steps=300, progress=False, preview_length=32,
                             model_options={"max_source_len": 128, "max_target_len": 128})
    evals = [json.loads(line) for line in (tmp_path / "hlm" / "log.jsonl").read_text(encoding="utf-8").splitlines() if '"eval"' in line]
    assert len(evals) >= 3
    ppl = [e["val_ppl"] for e in evals]
    assert ppl[-1] < ppl[0] * 0.8, ppl
    assert "**input**" in (tmp_path / "hlm" / "samples.md").read_text(encoding="utf-8")

    _, val = pairs.split(0.1)
    model, eos, suppress = tg.model, tg.decoding.eos_id, list(tg.decoding.suppress)
    wins, n = 0, 30
    for source in val.documents[:n]:
        ids = tg.tokenizer.encode(source)[-128:]  # held-out text may hold characters never trained on: <unk>
        greedy = [t[0] for t in sample_steps(model, ids, GenerationConfig(max_new_tokens=48, temperature=0), 1, eos, suppress)]
        beams = GenerationConfig(max_new_tokens=48, temperature=0, num_beams=4, length_penalty=0.0)
        best = beam_search(model, ids, beams, eos, suppress)[0]
        beam_lp = sequence_logprob(model, ids, best.tokens + ([eos] if best.finished else []), suppress)
        wins += beam_lp >= sequence_logprob(model, ids, greedy, suppress) - 1e-4
    assert wins >= 0.9 * n, f"beam ≥ greedy on {wins}/{n}"
