"""Continuous batching: jobs that join a running batch at different times write exactly what each
writes on its own through the ordinary decoding path, for every architecture (including the
transformer past its window with rotary and with learned positions)."""

from __future__ import annotations

import pytest
import torch

from xuxie.batching import Batcher, Job
from xuxie.decoding import DecodingSetup, GenerationConfig
from xuxie.models import build_model
from xuxie.tokenizers import train_tokenizer

TEXT = "宝玉笑道：你们都来了。The quick brown fox jumps over the lazy dog.\n" * 20
ARCHS = [
    ("lstm", {}), ("gru", {}), ("rnn", {}),
    ("attention-rnn", {"window": 6}), ("attention-rnn", {"window": 6, "bidirectional": True}),
    ("transformer", {"context": 8, "n_layer": 2, "n_head": 2, "n_embd": 16}),
    ("transformer", {"context": 8, "n_layer": 2, "n_head": 2, "n_embd": 16, "positions": "learned"}),
    ("seq2seq", {"max_source_len": 40}),
]


@pytest.mark.parametrize("arch,options", ARCHS, ids=[f"{a}-{'-'.join(map(str, o.values()))}" for a, o in ARCHS])
def test_jobs_joining_a_batch_write_what_they_write_alone(arch, options):
    torch.manual_seed(0)
    tokenizer = train_tokenizer("char", [TEXT])
    model = build_model(arch, tokenizer.vocab_size, **options).eval()
    setup = DecodingSetup.for_model(model, tokenizer, "pairs" if arch == "seq2seq" else "text")
    requests = [("宝玉笑道", GenerationConfig(max_new_tokens=30, seed=7, top_p=0.9), 2),
                ("The", GenerationConfig(max_new_tokens=25, seed=1, temperature=0.7, repetition_penalty=1.3), 1),
                ("你们都来", GenerationConfig(max_new_tokens=12, temperature=0), 1),
                ("fox", GenerationConfig(max_new_tokens=20, seed=3, top_k=5, stop=("o",)), 3)]
    alone = [setup.texts(setup.prompt_ids(p), c, n) for p, c, n in requests]

    written: dict[tuple[int, int], str] = {}

    def collect(job, emissions):
        for e in emissions:
            written[(jobs.index(job), e.index)] = written.get((jobs.index(job), e.index), "") + e.text

    jobs = [Job(setup, setup.prompt_ids(p), c, n, on_emit=collect) for p, c, n in requests]
    batcher = Batcher(setup)
    batcher.add(jobs[0])
    batcher.step()
    batcher.step()
    batcher.add(jobs[1])
    batcher.step()
    batcher.add(jobs[2])
    batcher.add(jobs[3])
    while batcher.jobs:
        batcher.step()
    together = [[written.get((j, i), "") for i in range(n)] for j, (_, _, n) in enumerate(requests)]
    assert together == alone
    assert all(job.finished for job in jobs) and batcher.state is None


def test_a_cancelled_job_leaves_and_the_others_go_on():
    tokenizer = train_tokenizer("char", [TEXT])
    model = build_model("lstm", tokenizer.vocab_size, hidden_size=16).eval()
    setup = DecodingSetup.for_model(model, tokenizer, "text")
    config = GenerationConfig(max_new_tokens=50, seed=2)
    keep, leave = Job(setup, setup.prompt_ids("宝"), config, 2), Job(setup, setup.prompt_ids("玉"), config, 3)
    batcher = Batcher(setup)
    batcher.add(keep)
    batcher.add(leave)
    batcher.step()
    assert batcher.rows == 5
    leave.cancel()
    assert batcher.drop_cancelled() == [leave] and batcher.rows == 2 and batcher.logits.shape[0] == 2
    while batcher.jobs:
        batcher.step()
    assert keep.finished and keep.generated_tokens == 100
