"""Seq2Seq encoder–decoder: the model's incremental decoding equals its teacher-forced pass, the
shared decoding module drives it (greedy, sampling, beams), and the CLI/API use it end to end on a
small post→reply file (answers, attention heatmap, BLEU/chrF, clear errors)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli_errors import assert_clear_error, run, snapshot

from xuxie import TextGenerator
from xuxie.data import PairBatches, PairData
from xuxie.decoding import GenerationConfig, beam_search, sample_steps, sequence_logprob
from xuxie.errors import XuxieError
from xuxie.models import build_model
from xuxie.tokenizers import BOS, EOS, PAD


def small(**kw):
    opts = dict(hidden_size=32, embed_dim=16, dropout=0.0)
    opts.update(kw)
    torch.manual_seed(0)
    return build_model("seq2seq", 30, **opts).eval()


@pytest.mark.parametrize("attention", ["general", "dot", "additive"])
@pytest.mark.parametrize("input_feeding", [True, False])
@pytest.mark.parametrize("cell,layers,bidirectional", [("lstm", 2, True), ("gru", 1, False)])
def test_step_by_step_equals_teacher_forced_pass_with_padding(attention, input_feeding, cell, layers, bidirectional):
    m = small(attention=attention, input_feeding=input_feeding, cell=cell, num_layers=layers, bidirectional=bidirectional)
    lengths = [7, 5, 2]
    src = torch.randint(4, 30, (3, 7))
    for b, n in enumerate(lengths):
        src[b, n:] = PAD
    tgt = torch.randint(4, 30, (3, 6))
    with torch.no_grad():
        batched = m.forward_pairs(src, torch.tensor(lengths), tgt)
        for b, n in enumerate(lengths):  # one sequence alone, unpadded, one token at a time
            st = m.encode(src[b:b + 1, :n])
            steps = []
            for t in range(tgt.shape[1]):
                logits, st = m.step(tgt[b:b + 1, t], st)
                steps.append(logits)
            torch.testing.assert_close(torch.cat(steps), batched[b], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("attention", ["general", "dot"])
@pytest.mark.parametrize("teacher_forcing", [1.0, 0.5])
def test_batched_attention_backward_equals_autograd(attention, teacher_forcing, monkeypatch):
    # The step-by-step decoder's attention sums its keys/memory gradients over all steps in one
    # batched product; every parameter's gradient must equal autograd's step-by-step one.
    m = small(attention=attention, input_feeding=True, num_layers=2, teacher_forcing=teacher_forcing).double().train()
    lengths = torch.tensor([7, 5, 2])
    src = torch.randint(4, 30, (3, 7))
    for b, n in enumerate(lengths.tolist()):
        src[b, n:] = PAD
    tgt = torch.randint(4, 30, (3, 9))

    def grads(batched: bool) -> dict[str, torch.Tensor]:
        monkeypatch.setattr(type(m), "batched_attention_backward", batched)
        m.zero_grad()
        torch.manual_seed(1)  # the same scheduled-sampling draws
        logits, att = m.forward_pairs(src, lengths, tgt, return_attention=True)
        (logits.log_softmax(-1)[..., 5].sum() + (att * torch.arange(7.0, dtype=att.dtype)).sum()).backward()
        return {name: p.grad.clone() for name, p in m.named_parameters() if p.grad is not None}

    reference, batched = grads(False), grads(True)
    assert reference.keys() == batched.keys() and "encoder.weight_ih_l0" in batched
    for name in reference:
        torch.testing.assert_close(batched[name], reference[name], msg=name)


def test_attention_ignores_padding_and_rows_sum_to_one():
    m = small()
    src = torch.tensor([[5, 6, 7, PAD, PAD]])
    with torch.no_grad():
        _, att = m.forward_pairs(src, torch.tensor([3]), torch.tensor([[BOS, 8, 9]]), return_attention=True)
    assert att.shape == (1, 3, 5)
    assert float(att[0, :, 3:].abs().max()) == 0.0
    torch.testing.assert_close(att.sum(-1), torch.ones(1, 3))


def test_reorder_state_selects_sequences():
    m = small()
    with torch.no_grad():
        logits, st = m.prefill(torch.randint(4, 30, (2, 6)))
        st2 = m.reorder_state(st, torch.tensor([1, 1, 0]))
        a, _ = m.step(torch.tensor([9, 9, 9]), st2)
        b, _ = m.step(torch.tensor([9, 9]), st)
    torch.testing.assert_close(a, b[[1, 1, 0]])


def test_decoding_module_drives_seq2seq():
    m = small()
    src = [5, 6, 7, 8]
    greedy = GenerationConfig(max_new_tokens=12, temperature=0)
    tokens = [t[0] for t in sample_steps(m, src, greedy, 1, eos_id=EOS)]
    # Greedy == argmax of the teacher-forced pass over its own output.
    new = torch.tensor([tokens])
    with torch.no_grad():
        logits = m.continuation_logits(torch.tensor([src]), new)
    assert logits.argmax(-1).tolist() == tokens
    # Beam search's best is at least as likely as greedy (raw log-probability, no length normalisation).
    hyps = beam_search(m, src, GenerationConfig(max_new_tokens=12, temperature=0, num_beams=4, length_penalty=0.0), EOS)
    assert hyps[0].logprob >= sequence_logprob(m, src, tokens) - 1e-4
    assert abs(sequence_logprob(m, src, hyps[0].tokens + ([EOS] if hyps[0].finished else [])) - hyps[0].logprob) < 1e-3
    # Seeded sampling is reproducible.
    cfg = GenerationConfig(max_new_tokens=10, temperature=1.0, seed=3)
    assert list(sample_steps(m, src, cfg, 3, EOS)) == list(sample_steps(m, src, cfg, 3, EOS))


def test_repetition_penalty_does_not_punish_copying_the_source():
    """Processors see the decoder's own tokens, not the source: a penalty must not forbid copying."""
    m = small()
    src = [5, 6, 7, 8]
    with torch.no_grad():
        logits, _ = m.prefill(torch.tensor([src]))
    top = int(logits[0, -1].argmax())
    src_with_top = [top, top, top]
    a = next(sample_steps(m, src_with_top, GenerationConfig(max_new_tokens=1, temperature=0, repetition_penalty=50.0), 1))
    b = next(sample_steps(m, src_with_top, GenerationConfig(max_new_tokens=1, temperature=0), 1))
    assert a == b


def test_config_errors_are_clear():
    with pytest.raises(XuxieError, match="attention"):
        build_model("seq2seq", 30, attention="cosine")
    with pytest.raises(XuxieError, match="even"):
        build_model("seq2seq", 30, hidden_size=33)
    with pytest.raises(XuxieError, match="teacher forcing"):
        build_model("seq2seq", 30, teacher_forcing=1.5)
    with pytest.raises(XuxieError, match="input"):
        small().step(torch.tensor([5]), None)


def test_pair_data_truncates_and_batches_similar_lengths():
    rng = np.random.default_rng(0)
    src = [rng.integers(4, 30, n) for n in rng.integers(1, 40, 200)]
    tgt = [rng.integers(4, 30, n) for n in rng.integers(0, 40, 200)]
    data = PairData(src, tgt, max_source_len=20, max_target_len=25)
    assert data.src.shape[1] == 20 and data.tgt.shape[1] == 26
    i = next(k for k, s in enumerate(src) if len(s) > 20)
    assert data.src[i].tolist() == src[i][-20:].tolist()  # sources keep their end
    j = next(k for k, t in enumerate(tgt) if len(t) < 25)
    assert data.tgt[j, :len(tgt[j]) + 2].tolist() == [BOS, *tgt[j].tolist(), EOS]
    k = next(k for k, t in enumerate(tgt) if len(t) > 25)
    assert data.tgt[k].tolist() == [BOS, *tgt[k][:25].tolist()]  # cut: no <eos>
    batches = PairBatches(data, 16, seed=0)
    g = torch.Generator().manual_seed(0)
    b = batches.sample(g)
    assert b.src.shape[0] == 16 and b.tgt_in.shape == b.tgt_out.shape
    assert (b.tgt_in[:, 1:] == b.tgt_out[:, :-1]).all()
    # Length bucketing: little padding in a batch.
    real = int((b.tgt_out != PAD).sum())
    assert real / b.tgt_out.numel() > 0.7


# --------------------------------------------------------------------------- end to end
THINGS = "tea coffee rice noodles apples pizza dumplings tofu soup bread cake cheese mangoes oranges grapes salad".split()
CITIES = "Paris Beijing London Tokyo Berlin Madrid Rome Cairo Lima Oslo Seoul Delhi".split()
TEMPLATES = [("I love {t}!", "{t} is great, I eat {t} every day."),
             ("Where can I buy {t}?", "Try the market, they sell {t} there."),
             ("I am flying to {c} tomorrow.", "Have a good trip to {c}!"),
             ("What is the weather in {c}?", "It is sunny in {c} today.")]


def post_reply_lines(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.choice(TEMPLATES)
        t, c = rng.choice(THINGS), rng.choice(CITIES)
        out.append((a.format(t=t, c=c), b.format(t=t, c=c)))
    return out


@pytest.fixture(scope="module")
def replies(tmp_path_factory):
    """A post→reply model trained on 400 TSV lines through the CLI (about 25 s)."""
    d = tmp_path_factory.mktemp("replies")
    pairs = post_reply_lines(400, 0)
    (d / "posts.tsv").write_text("source\ttarget\n" + "\n".join(f"{a}\t{b}" for a, b in pairs) + "\n", encoding="utf-8")
    (d / "test.tsv").write_text("\n".join(f"{a}\t{b}" for a, b in post_reply_lines(40, 1)) + "\n", encoding="utf-8")
    r = run("train", d / "posts.tsv", "--arch", "seq2seq", "--out", d / "model", "--steps", "1000", "--hidden-size", "128",
            "--embed-dim", "64", "--batch-size", "32", "--quiet")
    assert r.exit_code == 0, r.stderr
    return d


def test_post_reply_tsv_trains_and_answers(replies):
    tg = TextGenerator.load(replies / "model")
    assert tg.is_seq2seq and tg.config["mode"] == "pairs"
    assert tg.config["results"]["final_val_loss"] < 0.3
    # Unseen posts (other combinations of templates and words): the answer copies the right word.
    held_out = post_reply_lines(30, 7)
    right = 0
    for post, reply in held_out:
        answer = tg.continue_text(post, temperature=0)
        right += answer == reply
    assert right >= 27, right
    r = run("continue", replies / "model", "--text", "I love cheese!", "--temperature", "0")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == "cheese is great, I eat cheese every day."


def test_generate_and_nbest_on_seq2seq(replies):
    r = run("generate", replies / "model", "--prompt", "Where can I buy tofu?", "--temperature", "0")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == "Try the market, they sell tofu there."  # the answer, not the prompt again
    r = run("continue", replies / "model", "--text", "What is the weather in Oslo?", "--num-beams", "4", "--n-best", "3")
    assert r.exit_code == 0, r.stderr
    assert "It is sunny in Oslo today." in r.stdout
    tg = TextGenerator.load(replies / "model")
    best = tg.nbest("What is the weather in Oslo?", 3, num_beams=4)
    assert len(best) == 3 and best[0][0] == "It is sunny in Oslo today."
    assert best[0][2] >= best[1][2] >= best[2][2]


def test_paragraphs_feed_each_answer_back(replies):
    tg = TextGenerator.load(replies / "model")
    steps = tg.continue_paragraphs("I love tea!", 3, temperature=0)
    assert len(steps) == 3
    assert steps[1][0] == steps[0][1] and steps[2][0] == steps[1][1]  # each answer is the next input
    assert tg.continue_text("I love tea!", 3, temperature=0) == "\n".join(a for _, a in steps)


def test_attention_heatmap_png(replies, tmp_path):
    png = tmp_path / "att.png"
    r = run("continue", replies / "model", "--text", "I am flying to Tokyo tomorrow.", "--temperature", "0", "--plot-attention", png)
    assert r.exit_code == 0, r.stderr
    assert png.stat().st_size > 10_000
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.shape[0] > 200 and len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 50
    tg = TextGenerator.load(replies / "model")
    w, src, tgt = tg.attention("I am flying to Tokyo tomorrow.", "Have a good trip to Tokyo!")
    assert w.shape == (len(tgt), len(src)) and tgt[-1] == "<eos>"
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)
    # Writing "Tokyo" looks at "Tokyo" in the post: attention really aligns. A character of a
    # bidirectional encoder's memory also knows its neighbours, and without input feeding the first
    # letter may come from the summary at the final "." (measured): so the five rows' mean mass on
    # "Tokyo" and the spaces beside it, against 7/31 = 0.23 spread evenly.
    s0, t0 = "".join(src).index(" Tokyo "), "".join(tgt[:-1]).index("Tokyo")
    assert w[t0:t0 + 5, s0:s0 + 7].sum(1).mean() > 0.4, w[t0:t0 + 5].argmax(1)


def test_evaluate_reports_bleu_and_chrf(replies):
    r = run("evaluate", replies / "model", replies / "test.tsv", "--json")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["pairs"] == 40 and d["decoded"] == 40
    assert d["perplexity"] < 1.5 and d["bleu"] > 80 and d["chrf"] > 80
    r = run("evaluate", replies / "model", replies / "test.tsv", "--num-beams", "3", "--max-pairs", "5", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["decoded"] == 5


def test_bad_inputs_get_one_clear_line(replies, tmp_path):
    model = replies / "model"
    before = snapshot(model)
    no_tab = tmp_path / "notab.tsv"
    no_tab.write_text("hello\tthere\nno tab here\n", encoding="utf-8")
    assert_clear_error(run("train", no_tab, "--arch", "seq2seq", "--out", tmp_path / "a"), "line 2", "tab")
    empty_target = tmp_path / "empty.tsv"
    empty_target.write_text("hello\tthere\nhi\t \n", encoding="utf-8")
    assert_clear_error(run("train", empty_target, "--arch", "seq2seq", "--out", tmp_path / "b"), "line 2", "empty")
    empty_source = tmp_path / "empty_src.jsonl"
    empty_source.write_text('{"source": "a", "target": "b"}\n{"source": "", "target": "b"}\n', encoding="utf-8")
    assert_clear_error(run("train", empty_source, "--arch", "seq2seq", "--out", tmp_path / "c"), "line 2", "empty")
    # A pairs file for a language model.
    assert_clear_error(run("train", replies / "posts.tsv", "--mode", "pairs", "--out", tmp_path / "d"), "--arch seq2seq")
    # A plain text for --mode pairs.
    plain = tmp_path / "novel.txt"
    plain.write_text("第一段。\n\n第二段。\n", encoding="utf-8")
    assert_clear_error(run("train", plain, "--arch", "seq2seq", "--mode", "pairs", "--out", tmp_path / "e"), "continuation")
    # seq2seq with a language-model mode.
    assert_clear_error(run("train", plain, "--arch", "seq2seq", "--mode", "lines", "--out", tmp_path / "f"), "--mode pairs")
    # An input longer than the model reads.
    long = "I love tea! " * 40
    assert_clear_error(run("continue", model, "--text", long), "at most 256", "--truncate")
    assert run("continue", model, "--text", long, "--truncate", "--max-new-tokens", "5").exit_code == 0
    # Nothing to continue / both inputs / attention for a language model.
    assert_clear_error(run("continue", model), "--input")
    assert_clear_error(run("continue", model, "--text", "  "), "empty")
    assert_clear_error(run("generate", model), "answers an input")
    assert_clear_error(run("continue", model, "--text", "hi", "--n-best", "3"), "--num-beams 3")
    assert_clear_error(run("write", model), "xuxie continue")
    assert_clear_error(run("export", model, tmp_path / "hf"), "transformer")
    for name in ("a", "b", "c", "d", "e", "f"):
        assert not (tmp_path / name).exists()
    assert snapshot(model) == before


def test_continue_works_for_language_models(small_shakespeare_model):
    tg = small_shakespeare_model
    two = tg.continue_text("ROMEO:\n", paragraphs=2, temperature=0.8, seed=1, max_new_tokens=300)
    lines = [line for line in two.split("\n") if line.strip()]
    assert 1 <= len(lines) <= 2  # it stops after the second paragraph (line)
    r = run("continue", tg.path, "--text", "ROMEO:", "--plot-attention", Path("x.png"))
    assert_clear_error(r, "seq2seq")


def test_continuation_training_resumes_and_scores_a_plain_text(tmp_path):
    from conftest import corpus_path

    text = corpus_path("hongloumeng.txt").read_text(encoding="utf-8")[:20000]
    novel = tmp_path / "novel.txt"
    novel.write_text(text, encoding="utf-8")
    out = tmp_path / "m"
    small_opts = ("--hidden-size", "32", "--embed-dim", "16", "--max-source-len", "48", "--max-target-len", "48", "--quiet",
                  "--preview-length", "8")
    r = run("train", novel, "--arch", "seq2seq", "--out", out, "--steps", "6", *small_opts)
    assert r.exit_code == 0, r.stderr
    cfg = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert cfg["mode"] == "pairs" and cfg["corpus"]["unit"] == "paragraph" and cfg["train"]["batch_size"] == 48  # ≈ 2048 target tokens
    assert "**input**" in (out / "samples.md").read_text(encoding="utf-8")
    r = run("train", novel, "--out", out, "--resume", "--steps", "9", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["results"]["steps"] == 9
    r = run("evaluate", out, novel, "--max-pairs", "3", "--json")  # a plain text is paired as in training
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["decoded"] == 3 and d["truncated_targets"] > 0 and d["perplexity"] > 1
    # char tokenizer: one token per character (<eos> counts as one), cut targets counted to the cut
    assert abs(d["bits_per_char"] - d["loss"] / math.log(2)) < 1e-6
